"""One droplet's machine: systemd-nspawn --boot on a copy-on-write overlay of the cached rootfs.

The rootfs is the overlay's read-only lower layer; the droplet's own upper
layer is a directory of the run, so a reboot boots the same layer again and a
replacement droplet starts from a new one. The overlay, a private /run (where
nspawn keeps its runtime files) and a handle on the network namespace live in
a private mount namespace that ends with nspawn: no mount is ever left on the
machine. The console goes to console.log, each boot after a separator line.

For fstab's volume line to be mounted at boot as on a droplet, the container's
systemd gets SYSTEMD_SYSFS_CHECK=0: without it systemd-fstab-generator ignores
device lines whenever /sys is read-only, as nspawn mounts it
(src/fstab-generator/fstab-generator.c, "/sys/ is read-only (running in a
container?), ignoring mount for %s"). seed.fsck_without_device is the other
half.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Sequence
from pathlib import Path

from support.lab.processes import RunState
from support.lab.shell import LabError, wait_for
from support.nspawn import ENV, ContainerFailed, enter, leader, stop

BOOT_TIMEOUT = 30.0
# systemd gives a unit 90 s to stop (DefaultTimeoutStopSec) before it kills it.
SHUTDOWN_TIMEOUT = 100.0
# nspawn's exit code when the container's systemd rebooted (systemd-nspawn(1)).
REBOOTED = 133

# $1 the mount point, $2 lower, $3 upper, $4 work, $5 the network namespace; then nspawn's args.
_BOOT = """
set -eu
mount -t tmpfs -o mode=0755 droplet-box "$1"
mkdir "$1/root"
touch "$1/netns"
mount --bind "/run/netns/$5" "$1/netns"
mount -t overlay droplet-box -o "lowerdir=$2,upperdir=$3,workdir=$4" "$1/root"
mount -t tmpfs -o mode=0755 droplet-box-run /run
root="$1/root"
netns="$1/netns"
shift 5
exec systemd-nspawn --directory="$root" --network-namespace-path="$netns" "$@"
"""


class Machine:
    """Boots, reboots and powers off; runs commands inside; reads its files."""

    def __init__(
        self,
        state: RunState,
        *,
        lower: Path,
        directory: Path,
        netns: str,
        name: str,
        machine_id: str,
        binds: Sequence[tuple[str, str]] = (),
    ) -> None:
        """`binds`: (host path, path inside) pairs, e.g. the volume's loop device."""
        self.state = state
        self.lower = lower
        self.directory = directory
        self.upper = directory / "upper"
        self.netns = netns
        self.name = name
        self.machine_id = machine_id
        self.binds = tuple(binds)
        self.console_log = directory / "console.log"
        self.boots = 0
        self.nspawn: subprocess.Popen[bytes] | None = None
        self.leader: int | None = None
        self.upper.mkdir(parents=True, exist_ok=True)
        (directory / "work").mkdir(exist_ok=True)
        (directory / "mnt").mkdir(exist_ok=True)

    # -- lifecycle -----------------------------------------------------------

    def boot(self) -> None:
        """Start the container; returns once its systemd runs (cloud-init has not run yet)."""
        if self.running():
            raise LabError(f"{self.name} is already running")
        self.boots += 1
        arguments = [
            "--quiet",
            "--register=no",  # no machined: this machine's PID 1 is not systemd
            "--keep-unit",
            "--link-journal=no",
            "--resolv-conf=off",
            "--timezone=off",
            f"--machine={self.name}",
            f"--uuid={self.machine_id}",  # the first boot's machine-id
            "--setenv=SYSTEMD_SYSFS_CHECK=0",
            # Root on a droplet may change its network (nftables, tailscaled's TUN and
            # routes); nspawn keeps CAP_NET_ADMIN out of the bounding set by default.
            "--capability=CAP_NET_ADMIN",
            "--bind=/dev/net/tun",
            *(f"--bind={host}:{inside}" for host, inside in self.binds),
            "--boot",
        ]
        mounts = [self.directory / "mnt", self.lower, self.upper, self.directory / "work"]
        unshare = ["unshare", "--mount", "--propagation=private", "sh", "-c", _BOOT, "sh"]
        with self.console_log.open("ab") as console:
            console.write(f"\n--- boot {self.boots} ---\n".encode())
            console.flush()
            self.nspawn = subprocess.Popen(
                [*unshare, *map(str, mounts), self.netns, *arguments],
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                # A droplet's /proc/sys/net is its own to write (the forwarded ports turn on
                # ip_forward): nspawn mounts /proc/sys read-only but for this.
                env={**ENV, "SYSTEMD_NSPAWN_API_VFS_WRITABLE": "network"},
                start_new_session=True,
            )
        self.state.add_pid(self.nspawn.pid)
        try:
            self.leader = leader(self.nspawn, self.console_log, BOOT_TIMEOUT)
        except ContainerFailed as exc:
            self.kill()
            raise LabError(f"{self.name}: {exc}") from exc

    def running(self) -> bool:
        return self.nspawn is not None and self.nspawn.poll() is None

    def reboot(self) -> None:
        """`systemctl reboot` inside; the same upper layer boots again."""
        code = self._shut_down("reboot")
        if code != REBOOTED:
            raise LabError(f"{self.name}: nspawn exited {code} on reboot, not {REBOOTED}")
        self.boot()

    def poweroff(self) -> None:
        code = self._shut_down("poweroff")
        if code != 0:
            raise LabError(f"{self.name}: nspawn exited {code} on poweroff")

    def _shut_down(self, verb: str) -> int:
        nspawn = self._process()
        self.run(["systemctl", "--no-block", verb])
        try:
            return nspawn.wait(timeout=SHUTDOWN_TIMEOUT)
        except subprocess.TimeoutExpired:
            tail = self.console_tail()
            self.kill()
            raise LabError(f"{self.name}: no {verb} within {SHUTDOWN_TIMEOUT:g}s\n{tail}") from None
        finally:
            self.leader = None

    def kill(self) -> None:
        """Power off now (SIGTERM to nspawn), SIGKILL if it hangs. Safe to call twice."""
        if self.nspawn is not None:
            stop(self.nspawn, self.leader)
        self.leader = None

    # -- inside --------------------------------------------------------------

    def run(
        self, argv: Sequence[object], *, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run a program inside, as root, outside any unit (like `nsenter`, not like ssh)."""
        command = [*enter(self._leader()), *map(str, argv)]
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, errors="replace", env=ENV, timeout=timeout
            )
        except subprocess.TimeoutExpired as exc:
            raise LabError(f"{self.name}: {' '.join(command)}: no exit in {timeout:g}s") from exc
        if check and done.returncode != 0:
            raise LabError(
                f"{self.name}: {' '.join(map(str, argv))} exited {done.returncode}\n"
                f"{done.stdout[-3000:]}{done.stderr[-3000:]}"
            )
        return done

    def sh(self, script: str) -> str:
        return self.run(["sh", "-ec", script]).stdout

    def path(self, inside: str) -> Path:
        """A path of the running machine, reachable from this one. Its symlinks are followed
        inside the machine: through /proc/<pid>/root the kernel would resolve an absolute
        one (/var/lib/cloud/instance, say) against this machine's root."""
        return _resolve(Path(f"/proc/{self._leader()}/root"), inside)

    def read(self, inside: str) -> bytes:
        """A file of the machine: through the running one, else from its upper layer
        (what it wrote; the rootfs itself is never needed here)."""
        if self.running():
            return self.path(inside).read_bytes()
        return _resolve(self.upper, inside).read_bytes()

    def wait_for_line(self, inside: str, pattern: str, timeout: float, since: int = 0) -> str:
        """The first line of file `inside` after byte `since` that matches `pattern`."""
        regex = re.compile(pattern)

        def found() -> str | None:
            if not self.running():
                raise LabError(f"{self.name} stopped:\n{self.console_tail()}")
            try:
                text = self.path(inside).read_bytes()[since:].decode(errors="replace")
            except FileNotFoundError:
                return None
            return next((line for line in text.splitlines() if regex.search(line)), None)

        try:
            return wait_for(f"{pattern!r} in {self.name}:{inside}", found, timeout, 0.1)
        except LabError as exc:
            raise LabError(f"{exc}\nconsole:\n{self.console_tail()}") from None

    def wait_for_journal(self, pattern: str, timeout: float, unit: str | None = None) -> str:
        """The first line of this boot's journal (of `unit`, if given) matching `pattern`."""
        regex = re.compile(pattern)
        command = ["journalctl", "-b", "--no-pager", "-o", "cat", *(["-u", unit] if unit else [])]

        def found() -> str | None:
            lines = self.run(command, check=False).stdout.splitlines()
            return next((line for line in lines if regex.search(line)), None)

        return wait_for(f"{pattern!r} in {self.name}'s journal", found, timeout, 0.2)

    def size(self, inside: str) -> int:
        """Bytes in a file inside (0 if absent): a `since` for `wait_for_line`."""
        try:
            return self.path(inside).stat().st_size
        except FileNotFoundError:
            return 0

    def console(self) -> str:
        return self.console_log.read_text(errors="replace")

    def console_tail(self, lines: int = 25) -> str:
        return "\n".join(self.console().splitlines()[-lines:])

    def _process(self) -> subprocess.Popen[bytes]:
        if self.nspawn is None or not self.running():
            raise LabError(f"{self.name} is not running")
        return self.nspawn

    def _leader(self) -> int:
        if self.leader is None or not self.running():
            raise LabError(f"{self.name} is not running")
        return self.leader


def _resolve(root: Path, inside: str, hops: int = 40) -> Path:
    """`inside` under `root`, each symlink on the way read and followed under `root` too."""
    resolved = root
    parts = [part for part in inside.split("/") if part not in ("", ".")]
    while parts:
        part = parts.pop(0)
        if part == "..":
            resolved = resolved.parent if resolved != root else root
            continue
        candidate = resolved / part
        if not candidate.is_symlink():
            resolved = candidate
            continue
        hops -= 1
        if hops < 0:
            raise OSError(f"too many symlinks in {inside}")
        target = str(candidate.readlink())
        if target.startswith("/"):
            resolved = root
        parts = [p for p in target.split("/") if p not in ("", ".")] + parts
    return resolved
