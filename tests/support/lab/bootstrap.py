"""bootstrap.sh in the edge box: the deployed script itself, every step but two.

The state-volume step (format and mount a block device) and the packages step
(apt: Tailscale, Caddy, age, Litestream) need a block device and the internet.
The lab provides what they leave behind instead (`after_the_skipped_steps`):
the volume's directories are bind mounts the box is born with, the programs
are on its PATH, the `dpkg-query` shim reports their versions (so the
headscale-package step installs nothing), the packages' system users exist
(their postinst's commands), tls.ca_roots is in the box's system trust store as
update-ca-certificates would put it, and the package's tailscaled runs. Every
other step is the deployed files' own code, named on bootstrap.sh's command
line in the order of steps/order, run with bash in the box; their systemctl
calls are served by units.py. What each step did is read from the record it
keeps, by name.
"""

from __future__ import annotations

import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from homelab_tunnel.payload import BOOTSTRAP_STEPS
from homelab_tunnel.render.user_data import CONF, LIB
from support.lab.boxes import Box
from support.lab.shell import BASE_ENV, LabError

SCRIPT = f"{LIB}/bootstrap.sh"
SKIPPED = ("state-volume", "packages")
STEP_RECORDS = "/run/homelab-tunnel/bootstrap"
TRUST_STORE = "/etc/ssl/certs/ca-certificates.crt"
TIMEOUT = 300

# The .debs' postinst: Headscale's (packaging/deb/postinst) and Debian's caddy.
# --no-log-init: the box's /var/log is the host's, which the lab never writes.
PACKAGE_USERS = (
    ["groupadd", "--force", "--system", "headscale"],
    ["useradd", "--system", "--no-log-init", "--shell", "/usr/sbin/nologin", "--gid",
     "headscale", "--home-dir", "/var/lib/headscale", "--comment", "headscale default user",
     "headscale"],
    ["groupadd", "--force", "--system", "caddy"],
    ["useradd", "--system", "--no-log-init", "--shell", "/usr/sbin/nologin", "--gid", "caddy",
     "--home-dir", "/var/lib/caddy", "--comment", "Caddy web server", "caddy"],
)  # fmt: skip


@dataclass
class BootstrapRun:
    """One run: its exit code, every line it printed (timed), and each step's record."""

    returncode: int = 0
    lines: list[tuple[float, str]] = field(default_factory=list)
    steps: dict[str, str] = field(default_factory=dict)

    @property
    def output(self) -> str:
        return "".join(f"{line}\n" for _, line in self.lines)

    def step(self, name: str) -> str:
        """What step `name` did ("restore-state: ..."), '' if it did not finish."""
        assert name in BOOTSTRAP_STEPS, f"no bootstrap step {name}"
        return self.steps.get(name, "")

    def failure(self) -> str:
        found = [line for _, line in self.lines if line.startswith("homelab-tunnel: FAILED: ")]
        return found[-1].removeprefix("homelab-tunnel: FAILED: ") if found else ""


def after_the_skipped_steps(box: Box, *, extra_roots: str = "") -> None:
    """What the state-volume and packages steps leave on a droplet that the box lacks (above).

    `extra_roots`: PEM roots a droplet trusts anyway (the public CAs that sign Spaces).
    """
    for command in PACKAGE_USERS:
        box.run(command)
    roots = box.path(f"{CONF}/ca-roots.pem")
    added = roots.read_text() if roots.exists() else ""
    box.write(TRUST_STORE, Path(TRUST_STORE).read_text() + added + extra_roots)


def run_bootstrap(box: Box, env: dict[str, str]) -> BootstrapRun:
    """bash runs the deployed script with every step but SKIPPED, as the unit would."""
    steps = [step for step in BOOTSTRAP_STEPS if step not in SKIPPED]
    records = box.path(STEP_RECORDS)
    for record in records.glob("*") if records.is_dir() else []:
        record.unlink()  # /run is emptied at every boot
    process = subprocess.Popen(
        box.command(["bash", SCRIPT, *steps]),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        errors="replace",
        env={**BASE_ENV, **env},
    )
    run = BootstrapRun()
    assert process.stdout is not None
    stream = process.stdout

    def read() -> None:
        for line in stream:
            run.lines.append((time.time(), line.rstrip("\n")))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        run.returncode = process.wait(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise LabError(f"bootstrap.sh: no exit within {TIMEOUT}s\n{run.output[-3000:]}") from None
    reader.join(timeout=5)
    run.steps = (
        {path.name: path.read_text().strip() for path in records.glob("*") if path.is_file()}
        if records.is_dir()
        else {}
    )
    return run
