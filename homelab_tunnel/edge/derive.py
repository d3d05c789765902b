"""Keys derived from the edge secret, one per purpose, and the MACs made with them.

The edge secret (/etc/homelab-tunnel/edge-secret, 0600 root) is a random
value Terraform fills into user_data: the secret half of a Spaces key that is
used for nothing else, so nobody who holds only the backup bucket's key pair
holds it. From it come the edge's age identity ("age"), the MAC keys for
what the edge writes to the bucket ("keys" for the key-file manifest, "seal"
for the database seals) and the one for what Terraform writes to the config
bucket ("config", checked by edge/channel.py). The form is one Terraform can compute as well,
`sha256("homelab-tunnel/<purpose>/v1:${secret}")`, so a MAC key can be made
on either side of the bucket.

A signed document is its body followed by one line `hmac-sha256 <hex>`, the
HMAC-SHA256 of the body with the purpose's key.
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

SECRET_FILE = "etc/homelab-tunnel/edge-secret"  # noqa: S105 - a path, not a password
MAC_PREFIX = b"hmac-sha256 "


class NotSigned(Exception):
    """A document without a valid MAC from this edge's secret."""


def label(purpose: str) -> str:
    """What precedes the secret in the derivation of `purpose`'s key (infra/ writes it in HCL)."""
    return f"homelab-tunnel/{purpose}/v1:"


def derived_key(secret: str, purpose: str) -> str:
    """`sha256_hex("homelab-tunnel/" + purpose + "/v1:" + secret)`: 64 hex digits."""
    if not secret:
        raise ValueError("the edge secret is empty")
    return hashlib.sha256((label(purpose) + secret).encode()).hexdigest()


def equal(left: str, right: str) -> bool:
    """Two MACs compared in constant time."""
    return hmac.compare_digest(left.encode(), right.encode())


def read_secret(root: Path) -> str:
    """The edge secret under `root` ("/" on the droplet); ValueError when missing or empty."""
    path = root / SECRET_FILE
    try:
        secret = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not secret or secret.startswith("@@"):
        raise ValueError(f"{path} holds no secret (Terraform fills it into user_data)")
    return secret


def mac(secret: str, purpose: str, body: bytes) -> str:
    return hmac.new(derived_key(secret, purpose).encode(), body, hashlib.sha256).hexdigest()


def sign(secret: str, purpose: str, body: bytes) -> bytes:
    """`body` (ending in a newline) with its MAC line appended."""
    if not body.endswith(b"\n"):
        body += b"\n"
    return body + MAC_PREFIX + mac(secret, purpose, body).encode() + b"\n"


def verify(secret: str, purpose: str, document: bytes) -> bytes:
    """The body of a document this edge signed for `purpose`; NotSigned otherwise."""
    body, _, last = document.rstrip(b"\n").rpartition(b"\n")
    if not last.startswith(MAC_PREFIX):
        raise NotSigned("it carries no MAC")
    expected = mac(secret, purpose, body + b"\n")
    if not hmac.compare_digest(last.removeprefix(MAC_PREFIX).decode(errors="replace"), expected):
        raise NotSigned("its MAC does not match this edge's secret")
    return body + b"\n"
