"""Stand-ins on a box's PATH for what the lab has no real one of: ssh, sudo, journalctl.

`ssh root@<reserved IP> CMD` runs CMD in the edge box, as sshd would run it
through a shell, so the join script and `doctor --ssh` do exactly what they
do against a droplet; any other destination is unreachable. `sudo` runs its
command (everything in the lab is root). `journalctl -u headscale` reads the
Headscale log the lab captured. Each call is logged to logs/shims.log.
"""

from __future__ import annotations

import sys
from pathlib import Path

from support.lab.addresses import RESERVED_IP
from support.lab.shell import BASE_ENV

HERE = Path(__file__).resolve().parent

SSH = """#!/bin/sh
# homelab-tunnel lab: ssh to the edge = a shell in the edge box.
echo "ssh $*" >> {calls}
while [ $# -gt 0 ]; do
  case "$1" in
    -o|-i|-p|-l|-F) shift 2 ;;
    -*) shift ;;
    *) break ;;
  esac
done
dest="$1"
shift
if [ "$dest" != "root@{reserved}" ]; then
  echo "ssh: connect to host ${{dest#*@}} port 22: No route to host" >&2
  exit 255
fi
exec nsenter -t "$(cat {holder})" -m -n -- env -i HOME=/root PATH={path} LANG=C.UTF-8 sh -c "$*"
"""

SUDO = """#!/bin/sh
echo "sudo $*" | sed 's/hskey-auth-[^ ]*/hskey-auth-REDACTED/g' >> {calls}
exec "$@"
"""

JOURNALCTL = """#!/bin/sh
exec {python} {services} journalctl {logs} "$@"
"""


def write_shims(directory: Path, *, edge_holder: Path, logs: Path) -> dict[str, Path]:
    """The shims as executables in `directory`; name -> path, for a box's /usr/local/bin."""
    directory.mkdir(parents=True, exist_ok=True)
    logs.mkdir(parents=True, exist_ok=True)
    calls = logs / "shims.log"
    scripts = {
        "ssh": SSH.format(
            calls=calls, reserved=RESERVED_IP, holder=edge_holder, path=BASE_ENV["PATH"]
        ),
        "sudo": SUDO.format(calls=calls),
        "journalctl": JOURNALCTL.format(
            python=sys.executable, services=HERE / "box_services.py", logs=logs
        ),
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
