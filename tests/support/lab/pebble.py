"""Pebble, Let's Encrypt's ACME test server, as the lab's certificate authority.

Two roots come out of it, and the edge's config names both in tls.ca_roots:
the CA of Pebble's own HTTPS listener (made here with openssl: Caddy must
trust the ACME directory it talks to) and Pebble's issuance root, which Pebble
makes afresh at every start (GET /roots/0 on its management port). Never
restart Pebble in a run: everything that trusts the old root would stop
trusting the certificates.
"""

from __future__ import annotations

import json
from pathlib import Path

from support.lab.addresses import ACME, ACME_NAME
from support.lab.boxes import Box
from support.lab.shell import run, wait_for

ACME_PORT = 14000
MANAGEMENT_PORT = 15000
DIRECTORY_URL = f"https://{ACME_NAME}:{ACME_PORT}/dir"


def make_ca(
    directory: Path, name: str = "homelab-tunnel lab listener CA", stem: str = "listener-ca"
) -> tuple[Path, Path]:
    """A lab CA, by default the listener CA: it signs Pebble's listener (and bench's relay)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca, key = directory / f"{stem}.pem", directory / f"{stem}.key"
    # The extensions a real CA has: Python 3.13's default (VERIFY_X509_STRICT, on the
    # droplet's python3) refuses a CA without keyUsage.
    run(["openssl", "req", "-x509", *_EC_KEY, "-keyout", key, "-out", ca, "-days", "7",
         "-subj", f"/CN={name}", "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"])  # fmt: skip
    return ca, key


def server_certificate(ca: Path, ca_key: Path, name: str, ip: str, out: Path) -> tuple[Path, Path]:
    """`out`.crt and `out`.key: a server certificate for `name` and `ip`, signed by `ca`."""
    cert, key, csr = (out.parent / f"{out.name}.{kind}" for kind in ("crt", "key", "csr"))
    run(["openssl", "req", *_EC_KEY, "-keyout", key, "-out", csr, "-subj", f"/CN={name}"])
    extensions = out.parent / f"{out.name}.cnf"
    extensions.write_text(
        f"subjectAltName=DNS:{name},IP:{ip}\nbasicConstraints=CA:FALSE\n"
        "keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n"
        "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"
    )
    run(["openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
         "-out", cert, "-days", "7", "-extfile", extensions])  # fmt: skip
    return cert, key


_EC_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]


class Pebble:
    """Pebble in its own box on the internet, validating challenges through the router."""

    def __init__(self, box: Box, binary: Path, directory: Path) -> None:
        self.box = box
        self.binary = binary
        self.directory = directory

    def start(self) -> None:
        """Start it and wait for its directory; then `roots()` holds both roots."""
        self.listener_ca, self.listener_ca_key = make_ca(self.directory)
        cert, key = server_certificate(
            self.listener_ca, self.listener_ca_key, ACME_NAME, ACME.address, self.directory / "acme"
        )
        config = {
            "pebble": {
                "listenAddress": f"{ACME.address}:{ACME_PORT}",
                "managementListenAddress": f"{ACME.address}:{MANAGEMENT_PORT}",
                "certificate": str(cert),
                "privateKey": str(key),
                # Validate on the real ports (Pebble's defaults are 5002/5001).
                "httpPort": 80,
                "tlsPort": 443,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": False,
                "retryAfter": {"authz": 1, "order": 1},
                "profiles": {"default": {"description": "lab", "validityPeriod": 7776000}},
            }
        }
        config_path = self.directory / "pebble.json"
        config_path.write_text(json.dumps(config, indent=1))
        # Real validation, without Pebble's random sleeps and 5 % bad-nonce rejections.
        env = {"PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0"}
        self.box.spawn("pebble", [self.binary, "-config", config_path], env=env)
        wait_for("Pebble's ACME directory", lambda: self._get(DIRECTORY_URL), 20, 0.05)
        root = self._get(f"https://{ACME_NAME}:{MANAGEMENT_PORT}/roots/0")
        self.issuance_root = self.directory / "pebble-root.pem"
        self.issuance_root.write_text(root)

    def roots(self) -> str:
        """tls.ca_roots for the lab config: the listener's CA, then the issuance root."""
        return self.listener_ca.read_text() + self.issuance_root.read_text()

    def issued(self) -> int:
        """Certificates issued so far in this run."""
        return self.box.log("pebble").count("Issued certificate serial")

    def _get(self, url: str) -> str:
        done = self.box.run(
            ["curl", "-fsS", "--max-time", "5", "--cacert", self.listener_ca, url], check=False
        )
        return done.stdout if done.returncode == 0 else ""
