"""The mirror on a router of its own with one machine that installs from it, and nothing else.

`mirror_run()` brings up the lab's router, the mirror box and an `installer`
box whose /etc/hosts names every mirrored host at the mirror and whose trust
store holds only the mirror's CA (in place of the public roots); it always
tears them down, and the router's leak guard must have dropped nothing.

`bootstrap_shell()` is bootstrap.sh's own download-and-verify code: helpers.sh,
the file it sources, so what the tests run against the mirror is what the edge
runs, not a copy that could drift.
"""

from __future__ import annotations

import contextlib
import secrets
import shlex
from collections.abc import Iterator
from dataclasses import dataclass

from support.config import ROOT
from support.lab.addresses import INSTALLER
from support.lab.boxes import Box
from support.lab.network import Internet
from support.lab.processes import RunState, reap_orphans, teardown
from support.mirror.box import MirrorBox
from support.mirror.site import Contents

HELPERS = ROOT / "homelab_tunnel/edge/files/helpers.sh"
# Where the trust store lives for curl (OpenSSL) and apt (GnuTLS) alike.
TRUST_STORE = "/etc/ssl/certs/ca-certificates.crt"


@dataclass
class MirrorRun:
    state: RunState
    internet: Internet
    mirror: MirrorBox
    installer: Box

    @property
    def hosts(self) -> str:
        return "127.0.0.1 localhost\n" + self.mirror.hosts_lines()


@contextlib.contextmanager
def mirror_run(contents: Contents) -> Iterator[MirrorRun]:
    reap_orphans()
    state = RunState(f"mr{secrets.token_hex(2)}")
    leaked: int | None = None
    try:
        internet = Internet(state)
        internet.create()
        mirror = MirrorBox(state, contents)
        mirror.create(internet)
        mirror.start()
        installer = Box(state, "installer")
        installer.create()
        internet.attach(installer, INSTALLER, "installer0")
        run = MirrorRun(state, internet, mirror, installer)
        installer.private_mounts(hosts=run.hosts, tools={})
        installer.write(TRUST_STORE, mirror.ca.read_text())
        yield run
        leaked = internet.leaked_packets()
    finally:
        teardown(state.prefix)
    assert leaked == 0, f"{leaked} packet(s) tried to leave the lab's addresses"


def bootstrap_shell(status: str) -> str:
    """bash defining bootstrap.sh's APT_OPTS, log/fail, fetch_keyring and install_release_deb
    (its status line goes to `status`): helpers.sh, the file bootstrap.sh sources."""
    return f"{HELPERS.read_text()}\nSTATUS={shlex.quote(status)}\n"
