"""Asking the edge itself, over ssh: which Headscale last ran on its volume, and its backups.

The answers come from programs installed on the edge by user_data (the
upgrade guard, restore-state.sh), so the operator's tool and the edge agree
on what a version or a restore point is.
"""

from __future__ import annotations

from pathlib import Path

from homelab_tunnel.edge.collect import Result
from homelab_tunnel.edge.versions import parse_version
from homelab_tunnel.errors import InputError
from homelab_tunnel.render.user_data import LIB
from homelab_tunnel.tailnet.ssh import ssh_runner

GUARD = ("env", f"PYTHONPATH={LIB}", "python3", "-m", "homelab_tunnel.edge.upgrade_guard")
RESTORE = f"{LIB}/restore-state.sh"
# A point-in-time restore stops Headscale, fetches and starts it again.
RESTORE_TIMEOUT = 600.0


def run_on_edge(target: str, argv: tuple[str, ...], timeout: float, known_hosts: Path) -> Result:
    """One command on the edge; a bad destination is bad input (exit 2)."""
    try:
        run = ssh_runner(target, known_hosts)
    except ValueError as exc:
        raise InputError("--ssh", [str(exc)]) from None
    return run([argv], timeout)


def running_headscale(target: str, known_hosts: Path) -> str | None:
    """The Headscale version that last ran on the edge's volume; None when none has yet."""
    result = run_on_edge(target, (*GUARD, "show"), 60.0, known_hosts)
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or len(lines) != 1:
        detail = (result.stderr.strip().splitlines() or ["no answer"])[-1]
        raise InputError(f"ssh {target}", [f"cannot read the running Headscale version: {detail}"])
    # "0.28.1 (stamp)", "0.28.0 (database)" or "none (fresh volume)"
    first = lines[0].split(" ", 1)[0]
    if first == "none":
        return None
    try:
        return str(parse_version(first))
    except ValueError:
        raise InputError(
            f"ssh {target}", [f"the edge answered {lines[0]!r}, not a Headscale version"]
        ) from None
