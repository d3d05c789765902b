"""The edge's systemd units and drop-ins laid out as user_data writes them, for tests to load.

Both `systemd-analyze verify` (tests/edge/test_units.py) and a booted systemd
(tests/lab/test_real_systemd.py) read the same files from the same place.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from homelab_tunnel.payload import FIXED_FILES
from homelab_tunnel.render.user_data import UNITS as SYSTEMD
from support.config import ROOT

SOURCES = ROOT / "cloud-init"
# The packages' own units our drop-ins extend (Headscale's .deb, Debian's caddy, Tailscale's).
PACKAGE_UNITS = ("headscale.service", "caddy.service", "tailscaled.service")
_EXEC = re.compile(r"^(Exec\w+=[-@:+!]*)(/\S+)", re.MULTILINE)


def shipped_units() -> dict[str, str]:
    """Every unit and drop-in user_data writes, by its path below /etc/systemd/system."""
    return {
        target.removeprefix(f"{SYSTEMD}/"): (SOURCES / source).read_text()
        for source, target, _ in FIXED_FILES
        if target.startswith(f"{SYSTEMD}/")
    }


def install_units(root: Path, program: Callable[[str], str] = str) -> list[str]:
    """The shipped units and drop-ins written into `root` (as /etc/systemd/system).

    `program` maps each Exec program's path to the one to run instead.
    Returns the names of the units (not the drop-ins).
    """
    names = []
    for relative, text in shipped_units().items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_EXEC.sub(lambda m: m[1] + program(m[2]), text))
        if path.parent == root:
            names.append(path.name)
    return names


def install_package_units(root: Path, exec_start: str) -> list[str]:
    """Stand-ins for the packages' units (`exec_start` each) written into `root`."""
    for name in PACKAGE_UNITS:
        (root / name).write_text(f"[Service]\nExecStart={exec_start}\n")
    return list(PACKAGE_UNITS)


needs_systemd_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze is not installed here (Debian package: systemd)",
)


def verify(root: Path, names: list[str]) -> str:
    """`systemd-analyze verify` of units in `root` (drop-ins included): exit code and complaints.

    It exits 0 even for keys it ignores, so a clean result is exactly "exit 0\n".
    """
    done = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *names],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=root,
        env={**os.environ, "SYSTEMD_UNIT_PATH": f"{root}:"},
    )
    return f"exit {done.returncode}\n{done.stdout}{done.stderr}"
