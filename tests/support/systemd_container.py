"""A real systemd, booted by systemd-nspawn on a throwaway overlay of this machine's root.

The machine's own root is the overlay's lower layer, read-only; what a test
adds goes to a tmpfs upper layer. Both mounts, and nspawn's runtime files,
live in a private mount namespace, so they vanish with its processes and the
machine is never written to. The container boots a target of its own with no
dependencies, so none of the machine's services start, and gets a private
network. Tests drive its manager with systemctl, run inside it by nsenter.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from support.nspawn import ENV, ContainerFailed, enter, leader, stop

TARGET = "homelab-tunnel-test.target"
COMMANDS = ("systemd-nspawn", "nsenter", "unshare")
BOOT_TIMEOUT = 20.0

# $1 the mount point, $2 the layer to add, then nspawn's arguments.
_BOOT = """
set -eu
mount -t tmpfs -o mode=0755 homelab-tunnel "$1"
mkdir "$1/upper" "$1/work" "$1/root"
cp -a "$2/." "$1/upper/"
chmod 0755 "$1/upper"  # the container's /, not the layer directory's mode
mount -t overlay overlay -o "lowerdir=/,upperdir=$1/upper,workdir=$1/work" "$1/root"
mount -t tmpfs -o mode=0755 homelab-tunnel-run /run
root="$1/root"
shift 2
exec systemd-nspawn --directory="$root" "$@"
"""


class SystemdUnavailable(RuntimeError):
    """A real systemd cannot be booted here; the message is the one line a skip shows."""


def check_machine() -> None:
    """Root, the commands, and overlayfs; `SystemdUnavailable` otherwise."""
    if os.geteuid() != 0:
        raise SystemdUnavailable("booting systemd in a container needs root")
    missing = [command for command in COMMANDS if shutil.which(command) is None]
    if missing:
        raise SystemdUnavailable(
            f"needs {', '.join(missing)} (Debian: systemd-container, util-linux; "
            "`make test` installs them)"
        )
    if not Path("/lib/systemd/systemd").exists():
        raise SystemdUnavailable("systemd is not installed here (/lib/systemd/systemd)")
    if "overlay" not in Path("/proc/filesystems").read_text():
        raise SystemdUnavailable("the kernel has no overlayfs")


def _target() -> str:
    """A target that pulls in nothing, so the booted system runs only what a test starts."""
    return "[Unit]\nDescription=homelab-tunnel test\nDefaultDependencies=no\n"


class Container:
    """A booted container: run commands in it and ask its systemd."""

    def __init__(self, leader: int, log: Path) -> None:
        self.leader = leader
        self.log = log

    def console(self) -> str:
        """What the container's systemd logged so far (to its console: no journald runs)."""
        return self.log.read_text(errors="replace")

    def run(self, *command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*enter(self.leader), *command],
            capture_output=True,
            text=True,
            check=check,
            env=ENV,
            timeout=30,
        )

    def sh(self, script: str) -> str:
        return self.run("sh", "-ec", script).stdout

    def systemctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run("systemctl", "--no-pager", *args, check=check)

    def show(self, unit: str, *properties: str) -> dict[str, str]:
        """`systemctl show` as a dict; a property may span lines (TimersMonotonic)."""
        shown: dict[str, str] = {}
        for line in self.systemctl(
            "show", unit, *(f"-p{p}" for p in properties)
        ).stdout.splitlines():
            key, _, value = line.partition("=")
            shown[key] = f"{shown[key]}\n{value}" if key in shown else value
        return shown

    def daemon_reload(self) -> None:
        self.systemctl("daemon-reload")


def _wait_running(container: Container) -> None:
    """Until the manager answers (its socket comes a moment after it starts) and has booted."""
    deadline = time.monotonic() + BOOT_TIMEOUT
    while True:
        state = container.run("systemctl", "is-system-running", check=False)
        said = state.stdout.strip() or state.stderr.strip()
        if said in ("running", "degraded"):
            return
        if time.monotonic() > deadline:
            raise SystemdUnavailable(f"the container's systemd is not running: {said}")
        time.sleep(0.05)


@contextlib.contextmanager
def booted(layer: Path, work: Path) -> Iterator[Container]:
    """systemd booted on this machine's root plus `layer`; powered off after the block.

    `work` is an empty directory for the mounts and nspawn's console log.
    """
    (layer / "etc/systemd/system").mkdir(parents=True, exist_ok=True)
    (layer / "etc/systemd/system" / TARGET).write_text(_target())
    mounts = work / "mnt"
    mounts.mkdir()
    log = work / "console.log"
    nspawn_args = [
        "--quiet",
        "--register=no",  # no systemd-machined here
        "--keep-unit",  # and no manager to ask for a scope
        "--link-journal=no",
        "--resolv-conf=off",
        "--timezone=off",
        "--private-network",
        f"--machine=homelab-tunnel-{os.getpid()}",
        f"--uuid={uuid.uuid4().hex}",  # the machine's id is the host's otherwise
        "--boot",
        f"systemd.unit={TARGET}",
        "systemd.log_target=console",
    ]
    unshare = ["unshare", "--mount", "--propagation=private", "sh", "-c", _BOOT, "sh"]
    with log.open("wb") as console:
        nspawn = subprocess.Popen(
            [*unshare, str(mounts), str(layer), *nspawn_args],
            stdin=subprocess.DEVNULL,
            stdout=console,
            stderr=subprocess.STDOUT,
            env=ENV,
        )
    pid1 = None
    try:
        try:
            pid1 = leader(nspawn, log, BOOT_TIMEOUT)
        except ContainerFailed as exc:
            raise SystemdUnavailable(str(exc)) from exc
        container = Container(pid1, log)
        _wait_running(container)
        yield container
    finally:
        stop(nspawn, pid1)
