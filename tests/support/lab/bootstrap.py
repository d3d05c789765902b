"""bootstrap.sh in the edge box: the deployed script itself, without steps 1 and 2.

Step 1 (format and mount the state volume) and step 2 (apt: Tailscale, Caddy,
age, Litestream) need a block device and the internet. The lab provides what
they leave behind instead (`after_steps_1_and_2`): the volume's directories
are bind mounts the box is born with, the programs are on its PATH, the
`dpkg-query` shim reports their versions (so step 5 installs nothing), the
packages' system users exist (their postinst's commands), tls.ca_roots is in
the box's system trust store as update-ca-certificates would put it, and the
package's tailscaled runs. Everything else is the deployed file's own code,
run with bash in the box: the health timer (step 0), the restore from the
bucket (3), the upgrade guard and the pre-upgrade copy (4), the ownership of
Headscale's state (5), Headscale with the DERP address from the metadata
service, the version stamp and the edge's join (6), the backups (7), Caddy once
the reserved IP is active (8), egress (9) and the final line. Its systemctl
calls are served by units.py.
"""

from __future__ import annotations

import re
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from homelab_tunnel.render.user_data import CONF, LIB
from support.lab.boxes import Box
from support.lab.shell import BASE_ENV, LabError

SCRIPT = f"{LIB}/bootstrap.sh"
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
    """One run: its exit code and every line it printed, with the wall-clock time it came."""

    returncode: int = 0
    lines: list[tuple[float, str]] = field(default_factory=list)

    @property
    def output(self) -> str:
        return "".join(f"{line}\n" for _, line in self.lines)

    def step(self, number: int) -> str:
        """The line step `number` logged ("3/9 restore-state: ..."), '' if it logged none."""
        prefix = f"homelab-tunnel: {number}/9 "
        found = [line for _, line in self.lines if line.startswith(prefix)]
        return found[-1].removeprefix("homelab-tunnel: ") if found else ""

    def failure(self) -> str:
        found = [line for _, line in self.lines if line.startswith("homelab-tunnel: FAILED: ")]
        return found[-1].removeprefix("homelab-tunnel: FAILED: ") if found else ""


def without_steps_1_and_2(script: str) -> str:
    """The deployed bootstrap.sh, minus the lines from the end of step 0 to the end of step 2."""
    lines = script.splitlines(keepends=True)
    ends = {
        step: [n for n, line in enumerate(lines) if re.match(rf'log "{step}/9 ', line)]
        for step in (0, 2)
    }
    if len(ends[0]) != 1 or len(ends[2]) != 1:
        raise LabError(f"bootstrap.sh: expected one top-level log line for steps 0 and 2: {ends}")
    return "".join(lines[: ends[0][0] + 1] + lines[ends[2][0] + 1 :])


def after_steps_1_and_2(box: Box, *, extra_roots: str = "") -> None:
    """What steps 1 and 2 leave on a droplet that the box does not have yet (see above).

    `extra_roots`: PEM roots a droplet trusts anyway (the public CAs that sign Spaces).
    """
    for command in PACKAGE_USERS:
        box.run(command)
    roots = box.path(f"{CONF}/ca-roots.pem")
    added = roots.read_text() if roots.exists() else ""
    box.write(TRUST_STORE, Path(TRUST_STORE).read_text() + added + extra_roots)


def run_bootstrap(box: Box, env: dict[str, str]) -> BootstrapRun:
    """bash runs the deployed script without steps 1 and 2, as the unit would; every line timed."""
    script = without_steps_1_and_2(box.path(SCRIPT).read_text())
    process = subprocess.Popen(
        box.command(["bash", "-c", script, SCRIPT]),  # $0: bootstrap.sh finds its neighbours
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
    return run
