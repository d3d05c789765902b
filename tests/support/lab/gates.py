"""The policy lab's sites, and the real auth server the homelab runs for them.

Four more sites on the homelab, each with one kind of policy, and the auth
server's own login site. The auth server is oauth2-proxy (built from the Go
module proxy, tools/binaries.toml), run on the home box as users run it
behind Caddy's forward_auth: /oauth2/auth answers 202 with X-Auth-Request-User
for a signed-in session and 401 otherwise; the login form at /oauth2/sign_in
checks an htpasswd file of bcrypt hashes and sets a cookie for the whole zone.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from support.lab.boxes import Box
from support.lab.shell import wait_for

AUTH_PORT = 4180
AUTH_NAME = "auth"
BASIC_USER, BASIC_PASSWORD = "alice", "alice lab password"
# `caddy hash-password --plaintext 'alice lab password' --bcrypt-cost 10`
BASIC_HASH = "$2a$10$bX2.B38Nq3TQJdnNRno2xunBUgV2kKxYodpYAd7Lt0JtlVTExwgrC"
SSO_USER, SSO_PASSWORD = "carol", "carol lab password"
# `caddy hash-password --plaintext 'carol lab password' --bcrypt-cost 10`
SSO_HASH = "$2a$10$gliKORpIBq5hoOnAs6NeIeBxDo65gbYba.o3e6LSoF.vyW/Z2yvpa"
COPIED = ["X-Auth-Request-User", "X-Auth-Request-Email"]


def policy_sites(zone: str, visitor: str) -> list[tuple[str, int, dict[str, Any]]]:
    """(name, app port, policy keys) of the sites the policy lab adds; `visitor`: the one
    address office.<zone> lets in."""
    return [
        ("family", 8081, {"auth": {"basic": [{"user": BASIC_USER, "password_hash": BASIC_HASH}]}}),
        (
            "sso",
            8082,
            {
                "auth": {
                    "forward": {
                        "upstream": "homelab",
                        "port": AUTH_PORT,
                        "path": "/oauth2/auth",
                        "copy_headers": COPIED,
                    }
                }
            },
        ),
        ("nobots", 8083, {"crawlers": "block-ai", "hsts": True}),
        ("office", 8084, {"allow_cidrs": [f"{visitor}/32"]}),
    ]


class AuthServer:
    """oauth2-proxy on the homelab, trusting forwarded headers from the edge alone."""

    def __init__(self, box: Box, binary: Path, zone: str) -> None:
        self.box = box
        self.binary = binary
        self.zone = zone

    def start(self, edge_address: str) -> None:
        self.box.write("/etc/oauth2-proxy/htpasswd", f"{SSO_USER}:{SSO_HASH}\n", 0o600)
        self.box.spawn(
            "oauth2-proxy",
            [
                self.binary,
                f"--http-address=0.0.0.0:{AUTH_PORT}",
                # A provider must be named; no one signs in through it here.
                "--provider=google",
                "--client-id=lab",
                "--client-secret=lab",
                f"--cookie-secret={secrets.token_hex(16)}",
                f"--cookie-domain=.{self.zone}",
                f"--whitelist-domain=.{self.zone}",
                "--email-domain=*",
                "--htpasswd-file=/etc/oauth2-proxy/htpasswd",
                "--upstream=static://202",
                "--set-xauthrequest",
                "--reverse-proxy",
                f"--trusted-proxy-ip={edge_address}/32",
            ],
        )
        probe = ["curl", "-s", "-o", "/dev/null", f"http://127.0.0.1:{AUTH_PORT}/ping"]
        wait_for("oauth2-proxy answering", lambda: self._answers(probe), 15, 0.1)

    def _answers(self, probe: list[str]) -> bool:
        return self.box.run(probe, check=False).returncode == 0
