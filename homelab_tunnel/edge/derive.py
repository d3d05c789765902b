"""Keys derived from the edge secret, one per purpose, in a form Terraform computes too.

The edge secret is a random value only Terraform and the edge hold (a Spaces
key's secret, never used to reach a bucket: the DigitalOcean provider has no
random resource). Each purpose gets its own key, so a MAC key never doubles as
an encryption key. Terraform has sha256() but no HMAC, so the derivation is
sha256 over a purpose-labelled string: `sha256("homelab-tunnel/<purpose>/v1:"
+ secret)`, the same in HCL and here (infra/ writes the HCL from `label`).
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

SECRET_PATH = Path("/etc/homelab-tunnel/edge-secret")


def label(purpose: str) -> str:
    """What precedes the secret in the derivation of `purpose`'s key."""
    return f"homelab-tunnel/{purpose}/v1:"


def derived_key(secret: str, purpose: str) -> str:
    """The key for `purpose`, as lowercase hex (what Terraform's sha256() returns)."""
    if not secret:
        raise ValueError("the edge secret is empty")
    return hashlib.sha256((label(purpose) + secret).encode()).hexdigest()


def read_secret(path: Path = SECRET_PATH) -> str:
    return path.read_text(encoding="utf-8").strip()


def equal(left: str, right: str) -> bool:
    """Compare two MACs in constant time."""
    return hmac.compare_digest(left.encode(), right.encode())
