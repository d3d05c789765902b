"""When each certificate Caddy serves expires, read from its storage on the state volume.

Caddy renews a Let's Encrypt certificate a third of its life before it ends;
one that keeps getting closer to its end means renewal fails (DNS moved, a
rate limit, port 80 closed), weeks before visitors see an error. Caddy keeps
each name's certificate chain as PEM in
`<storage>/certificates/<CA directory>/<name>/<name>.crt`. The standard
library parses no X.509, so the validity is read from the leaf's DER by hand:
five fields into the structure, always at the same place (RFC 5280, 4.1).
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

# Debian's caddy.service runs with HOME=/var/lib/caddy (on the state volume).
STORAGE = Path("/var/lib/caddy/.local/share/caddy")
_PEM = re.compile(rb"-----BEGIN CERTIFICATE-----\s+([A-Za-z0-9+/=\s]+?)-----END CERTIFICATE-----")


class CertificateError(ValueError):
    """Bytes that are not the certificate they should be."""


@dataclass(frozen=True)
class Certificate:
    name: str
    not_after: datetime
    issuer_directory: str  # the CA's folder: which ACME directory issued it

    def to_json(self, now: datetime) -> dict[str, object]:
        return {
            "name": self.name,
            "not_after": self.not_after.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "days_left": round((self.not_after - now).total_seconds() / 86400, 1),
            "issuer": self.issuer_directory,
        }


def _element(data: bytes, offset: int) -> tuple[int, int, int]:
    """(tag, start of content, end of content) of the DER element at `offset`."""
    if offset + 2 > len(data):
        raise CertificateError("truncated")
    tag, length = data[offset], data[offset + 1]
    start = offset + 2
    if length & 0x80:
        size = length & 0x7F
        if size == 0 or size > 4 or start + size > len(data):
            raise CertificateError("bad length")
        length = int.from_bytes(data[start : start + size], "big")
        start += size
    if start + length > len(data):
        raise CertificateError("truncated")
    return tag, start, start + length


def _time(tag: int, text: bytes) -> datetime:
    value = text.decode("ascii", errors="replace")
    formats = {0x17: "%y%m%d%H%M%SZ", 0x18: "%Y%m%d%H%M%SZ"}
    if tag not in formats:
        raise CertificateError(f"not a time (tag {tag:#x})")
    try:
        return datetime.strptime(value, formats[tag]).replace(tzinfo=UTC)
    except ValueError:
        raise CertificateError(f"bad time {value!r}") from None


def not_after(der: bytes) -> datetime:
    """The end of the validity of a DER certificate."""
    _, certificate, _ = _element(der, 0)
    tag, tbs, _ = _element(der, certificate)
    if tag != 0x30:
        raise CertificateError("not a certificate")
    offset = tbs
    tag, _, end = _element(der, offset)
    if tag == 0xA0:  # [0] EXPLICIT version
        offset = end
    for _ in range(3):  # serialNumber, signature algorithm, issuer
        offset = _element(der, offset)[2]
    tag, validity, _ = _element(der, offset)
    if tag != 0x30:
        raise CertificateError("no validity")
    _, _, before_end = _element(der, validity)
    tag, start, end = _element(der, before_end)
    return _time(tag, der[start:end])


def leaf(pem: bytes) -> bytes:
    """The first certificate of a PEM chain, as DER."""
    match = _PEM.search(pem)
    if match is None:
        raise CertificateError("no PEM certificate")
    return base64.b64decode(b"".join(match.group(1).split()))


def certificates(storage: Path = STORAGE) -> list[Certificate]:
    """Every certificate in Caddy's storage, by name; the newest when two CAs issued one."""
    found: dict[str, Certificate] = {}
    for path in sorted((storage / "certificates").glob("*/*/*.crt")):
        name = path.parent.name
        if path.stem != name:
            continue
        try:
            expiry = not_after(leaf(path.read_bytes()))
        except (OSError, CertificateError, ValueError):
            continue
        if name not in found or expiry > found[name].not_after:
            found[name] = Certificate(name, expiry, path.parent.parent.name)
    return sorted(found.values(), key=lambda cert: cert.name)
