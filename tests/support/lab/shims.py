"""A stand-in on the homelab's PATH for what the lab has no real one of: sudo.

`sudo` runs its command (everything in the lab is root), logging the call to
logs/shims.log with any pre-auth key redacted. ssh is the real one: the edge
is a booted droplet with sshd.
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent

SUDO = """#!/bin/sh
echo "sudo $*" | sed 's/hskey-auth-[^ ]*/hskey-auth-REDACTED/g' >> {calls}
exec "$@"
"""


def write_shims(directory: Path, *, logs: Path) -> dict[str, Path]:
    """The shims as executables in `directory`; name -> path, for a box's /usr/local/bin."""
    directory.mkdir(parents=True, exist_ok=True)
    logs.mkdir(parents=True, exist_ok=True)
    calls = logs / "shims.log"
    scripts = {
        "sudo": SUDO.format(calls=calls),
    }
    found = {}
    for name, script in scripts.items():
        path = directory / name
        path.write_text(script)
        path.chmod(0o755)
        found[name] = path
    return found


def calls(logs: Path) -> list[str]:
    """Every shim call so far, one line each ("ssh -o BatchMode=yes root@... CMD")."""
    path = logs / "shims.log"
    return path.read_text().splitlines() if path.exists() else []
