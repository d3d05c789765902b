"""Value types of the config: each a string or number with one check and one message.

Every check says what is allowed, so the user's one-line error is enough to fix
the file. Checks never touch the network.
"""

from __future__ import annotations

import base64
import ipaddress
import re
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field

# Regions as of 2026 (`doctl compute region list`); preflight asks the API
# whether the region really offers the size and block storage.
REGIONS = (
    "ams3",
    "atl1",
    "blr1",
    "fra1",
    "lon1",
    "nyc1",
    "nyc2",
    "nyc3",
    "sfo2",
    "sfo3",
    "sgp1",
    "syd1",
    "tor1",
)

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]*[a-z0-9]$")
_NAME = re.compile(r"^[a-z][a-z0-9-]{0,38}[a-z0-9]$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
FINGERPRINT = re.compile(r"^([0-9a-f]{2}:){15}[0-9a-f]{2}$")
_VERSION = re.compile(r"^v?\d+\.\d+\.\d+$")
_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
_HTTPS_URL = re.compile(r"^https://[^\s\"'\\]+$")
# The Headscale user of the edge's own node (its ACL policy names it).
EDGE_USER = "edge"
TAILNET_V4 = ipaddress.ip_network("100.64.0.0/10")


def _normalise_domain(value: Any) -> Any:
    if isinstance(value, str):
        return value.strip().lower().removesuffix(".")
    return value


def _check_fqdn(value: str) -> str:
    if value.startswith("*."):
        raise ValueError(
            f"{value!r}: wildcard names are not supported (list each name; "
            "Caddy gets one certificate per name over HTTP-01)"
        )
    labels = value.split(".")
    if (
        len(labels) < 2
        or len(value) > 253
        or not all(_LABEL.match(label) for label in labels)
        or labels[-1].isdigit()
    ):
        raise ValueError(
            f"{value!r} is not a fully qualified domain name "
            "(expected lowercase labels of a-z, 0-9 and '-', e.g. blog.example.com)"
        )
    return value


def _check_region(value: str) -> str:
    if value not in REGIONS:
        raise ValueError(f"{value!r} is not a DigitalOcean region; allowed: {', '.join(REGIONS)}")
    return value


def _check_slug(value: str) -> str:
    if not _SLUG.match(value):
        raise ValueError(
            f"{value!r} is not a DigitalOcean slug (lowercase letters, digits and '-')"
        )
    return value


def _check_name(value: str) -> str:
    if not _NAME.match(value):
        raise ValueError(
            f"{value!r} is not a valid name: 2-40 characters, lowercase letters, "
            "digits and '-', starting with a letter"
        )
    return value


def _check_email(value: str) -> str:
    if not _EMAIL.match(value):
        raise ValueError(f"{value!r} is not an email address")
    return value


def _check_cidr(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a CIDR string such as 203.0.113.7/32")
    try:
        interface = ipaddress.ip_interface(value)
    except ValueError:
        raise ValueError(
            f"{value!r} is not an IPv4 or IPv6 network (expected e.g. 203.0.113.7/32)"
        ) from None
    network = interface.network
    if interface.ip != network.network_address:
        raise ValueError(f"{value!r} has host bits set; did you mean {network.with_prefixlen!r}?")
    return network.with_prefixlen


def _check_bucket(value: str) -> str:
    if not _BUCKET.match(value):
        raise ValueError(
            f"{value!r} is not a Spaces bucket name (3-63 lowercase letters, digits and '-')"
        )
    return value


def _check_state_key(value: str) -> str:
    if value.startswith("/") or not value.endswith(".tfstate"):
        raise ValueError(
            f"{value!r}: expected a relative object key ending in .tfstate, "
            "e.g. 'edge/terraform.tfstate'"
        )
    return value


def _check_version(value: str) -> str:
    if not _VERSION.match(value):
        raise ValueError(f"{value!r} is not a version; expected MAJOR.MINOR.PATCH, e.g. '1.90.2'")
    return value.removeprefix("v")


def _check_sha256(value: str) -> str:
    if not _SHA256.match(value):
        raise ValueError(f"{value!r} is not a sha256 digest (64 hex characters)")
    return value.lower()


_PEM_CERTIFICATE = r"-----BEGIN CERTIFICATE-----\n[A-Za-z0-9+/=\n]+\n-----END CERTIFICATE-----\n"
_PEM_BUNDLE = re.compile(f"(?:{_PEM_CERTIFICATE})+")
MAX_PEM_BYTES = 16 * 1024


def _check_pem_certificates(value: str) -> str:
    """One or more PEM certificates and nothing else: they land in a file on the edge."""
    text = "\n".join(line.strip() for line in value.strip().splitlines()) + "\n"
    if len(text) > MAX_PEM_BYTES or not _PEM_BUNDLE.fullmatch(text):
        raise ValueError(
            "expected one or more PEM certificates (-----BEGIN CERTIFICATE----- ... "
            f"-----END CERTIFICATE-----) and nothing else, {MAX_PEM_BYTES // 1024} KiB at most"
        )
    for body in re.findall(r"CERTIFICATE-----\n([A-Za-z0-9+/=\n]+)\n-----END", text):
        try:
            base64.b64decode(body.replace("\n", ""), validate=True)
        except ValueError:
            raise ValueError("a PEM certificate's body is not valid base64") from None
    return text


def _check_https_url(value: str) -> str:
    if not _HTTPS_URL.match(value):
        raise ValueError(f"{value!r} is not an https:// URL")
    return value


def _check_upstream(value: str) -> str:
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        if _LABEL.match(value):
            return value
        raise ValueError(
            f"{value!r} is not a tailnet machine name (one DNS label, e.g. 'homelab') "
            "or a tailnet IPv4 address (100.64.0.0/10)"
        ) from None
    if address not in TAILNET_V4:
        raise ValueError(
            f"{value!r} is not a tailnet address (100.64.0.0/10); upstreams are reached "
            "over the tailnet, by machine name or tailnet IPv4"
        )
    return value


def _check_ssh_key(value: str) -> str:
    if not value.strip():
        raise ValueError(
            "an SSH key is a fingerprint (aa:bb:...) or the key's name in DigitalOcean"
        )
    return value.strip()


Fqdn = Annotated[str, BeforeValidator(_normalise_domain), AfterValidator(_check_fqdn)]
Region = Annotated[str, AfterValidator(_check_region)]
Slug = Annotated[str, AfterValidator(_check_slug)]
Name = Annotated[str, AfterValidator(_check_name)]
Email = Annotated[str, AfterValidator(_check_email)]
Cidr = Annotated[str, BeforeValidator(_check_cidr)]
Upstream = Annotated[str, BeforeValidator(_normalise_domain), AfterValidator(_check_upstream)]
Bucket = Annotated[str, AfterValidator(_check_bucket)]
StateKey = Annotated[str, AfterValidator(_check_state_key)]
Version = Annotated[str, AfterValidator(_check_version)]
Sha256 = Annotated[str, AfterValidator(_check_sha256)]
HttpsUrl = Annotated[str, AfterValidator(_check_https_url)]
PemCertificates = Annotated[str, AfterValidator(_check_pem_certificates)]
SshKey = Annotated[str, AfterValidator(_check_ssh_key)]
Port = Annotated[int, Field(ge=1, le=65535)]
