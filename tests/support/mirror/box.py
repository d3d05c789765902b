"""The package mirror as a lab box: a network namespace on the lab's router, one web server in it.

    mirror  192.0.2.98   pkgs.tailscale.com, dl.cloudsmith.io, github.com (and its assets
                         host), deb.debian.org: HTTPS on 443 (plain HTTP on 80 for Debian)

A box that should install from it names those hosts at the mirror's address
(`names`, or `hosts_lines()` for its /etc/hosts) and trusts `ca` (the lab CA that signed
one certificate per host name) in place of the public roots. Its apt keys are
the run's lab key (`keyring(armor=...)`), served where bootstrap downloads
each project's key; `debian_sources()` is the line the edge's own Debian
sources name. `stop()` and `start()` take the server down and bring it back
(the "mirror down on first boot" scenario); `requests()` is what was fetched.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

from support.lab.addresses import MIRROR, Host
from support.lab.boxes import Box
from support.lab.network import Internet
from support.lab.pebble import make_ca, server_certificate
from support.lab.processes import RunState
from support.lab.shell import LabError, wait_for
from support.mirror.signing import ArchiveKey
from support.mirror.site import (
    DEBIAN_ARCHIVE,
    DEBIAN_SUITE,
    HOSTS,
    PLAIN_HOSTS,
    REDIRECTS,
    Contents,
    local_path,
    write_site,
)

SERVER = Path(__file__).resolve().parent / "server.py"
LINK = "mirror0"


def debian_sources(keyring: str) -> str:
    """The edge's Debian sources line: the mirror's trixie, trusted through `keyring` (a path)."""
    return f"deb [signed-by={keyring}] {DEBIAN_ARCHIVE} {DEBIAN_SUITE} main\n"


class MirrorBox:
    """The mirror of one lab run; `create()` wires it, `start()` serves, teardown is the run's."""

    def __init__(self, state: RunState, contents: Contents, host: Host = MIRROR) -> None:
        self.box = Box(state, "mirror")
        self.host = host
        self.contents = contents
        self.directory = state.directory / "mirror"
        self.site = self.directory / "site"
        self.request_log = self.directory / "requests.jsonl"
        self.ca = self.directory / "mirror-ca.pem"
        self._config = self.directory / "server.json"
        self._keyrings: dict[bool, bytes] = {}

    @property
    def names(self) -> dict[str, str]:
        """Every mirrored host name -> the mirror's address (the lab's `hosts_file` takes this)."""
        return {name: self.host.address for name in HOSTS}

    def hosts_lines(self) -> str:
        """/etc/hosts lines naming every mirrored host at the mirror."""
        return "".join(f"{address} {name}\n" for name, address in self.names.items())

    def keyring(self, *, armor: bool) -> bytes:
        """The public lab key apt trusts: binary (`.gpg`, signed-by) or armored."""
        return self._keyrings[armor]

    def create(self, internet: Internet) -> None:
        """The box on the router, its site signed and its certificates made."""
        self.box.create()
        internet.attach(self.box, self.host, LINK)
        self.directory.mkdir(parents=True, exist_ok=True)
        key = ArchiveKey(self.directory / "gnupg")
        try:
            write_site(self.site, self.contents, key)
            self._keyrings = {armor: key.public(armor=armor) for armor in (False, True)}
        finally:
            key.stop()
        self.ca, ca_key = make_ca(self.directory, "homelab-tunnel lab mirror CA", "mirror-ca")
        certificates = {}
        (self.directory / "tls").mkdir()
        for name in HOSTS:
            cert, private = server_certificate(
                self.ca, ca_key, name, self.host.address, self.directory / "tls" / name
            )
            certificates[name] = [str(cert), str(private)]
        config = {
            "address": self.host.address,
            "site": str(self.site),
            "log": str(self.request_log),
            "plain_hosts": list(PLAIN_HOSTS),
            "redirects": REDIRECTS,
            "certificates": certificates,
        }
        self._config.write_text(json.dumps(config, indent=1))

    def start(self) -> None:
        """Serve (again); returns once both listeners are bound."""
        if "mirror" in self.box.daemons:
            raise LabError("the mirror is already serving")
        before = self.box.log("mirror").count("serving ")
        daemon = self.box.spawn("mirror", [sys.executable, SERVER, self._config])
        wait_for(
            "the mirror's web server",
            lambda: self.box.log("mirror").count("serving ") > before or not daemon.running(),
            20,
            0.02,
        )
        if not daemon.running():
            raise LabError(f"the mirror's server exited:\n{self.box.log('mirror')[-2000:]}")

    def stop(self) -> None:
        """Stop serving: connections are refused until `start()`."""
        self.box.stop("mirror")

    def requests(self) -> list[dict[str, Any]]:
        """Every request so far: host, method, path, status, bytes, scheme, client."""
        if not self.request_log.exists():
            return []
        lines = self.request_log.read_text().splitlines()
        return [entry for entry in map(json.loads, lines) if "path" in entry]

    def file(self, url: str) -> Path:
        """The file this run serves for `url`."""
        return local_path(self.site, url)

    def tamper(self, url: str) -> bytes:
        """Change one byte of what `url` serves (this run's copy, never the cache); the original."""
        target = self.file(url)
        original = target.read_bytes()
        target.unlink()  # a hard link to the cache: a new file, not a write through it
        changed = bytearray(original)
        changed[len(changed) // 2] ^= 0x01
        target.write_bytes(bytes(changed))
        return original

    def restore(self, url: str, original: bytes) -> None:
        target = self.file(url)
        target.unlink()
        target.write_bytes(original)

    def destroy(self, internet: Internet) -> None:
        self.box.destroy()
        internet.detach(LINK)
        shutil.rmtree(self.directory / "gnupg", ignore_errors=True)
