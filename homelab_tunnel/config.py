"""The config tree: one TOML file, validated once, here and nowhere else.

Everything below this module (render/, constructs/, stacks/) trusts a
`TunnelConfig`; validators never touch the network so tests need no mocks.
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from homelab_tunnel.errors import InputError
from homelab_tunnel.versions import HEADSCALE_VERSION

# ---------------------------------------------------------------------------
# Value types
# ---------------------------------------------------------------------------

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
_FINGERPRINT = re.compile(r"^([0-9a-f]{2}:){15}[0-9a-f]{2}$")
_VERSION = re.compile(r"^v?\d+\.\d+\.\d+$")
_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
_HTTPS_URL = re.compile(r"^https://[^\s\"'\\]+$")
# The Headscale user of the edge's own node (its ACL policy names it).
EDGE_USER = "edge"
_TAILNET_V4 = ipaddress.ip_network("100.64.0.0/10")


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
    if address not in _TAILNET_V4:
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
SshKey = Annotated[str, AfterValidator(_check_ssh_key)]
Port = Annotated[int, Field(ge=1, le=65535)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------------------
# Sections
# ---------------------------------------------------------------------------


class Site(_Model):
    """One allowlisted domain and the tailnet service behind it."""

    domain: Fqdn
    upstream: Upstream = Field(description="tailnet machine name (MagicDNS label) or address")
    port: Port
    scheme: Literal["http", "https"] = "http"

    @property
    def upstream_is_address(self) -> bool:
        try:
            ipaddress.ip_address(self.upstream)
        except ValueError:
            return False
        return True


class DnsConfig(_Model):
    zone: Fqdn = Field(description="DigitalOcean DNS zone that holds every name")
    create_zone: bool = Field(
        default=False, description="true: the stack creates the zone; false: it must exist"
    )
    ttl: int = Field(default=300, ge=30, le=86400)


class HeadscaleConfig(_Model):
    domain: Fqdn = Field(description="public name of the Headscale server")
    base_domain: Fqdn = Field(description="MagicDNS base domain of the tailnet")
    version: Version = Field(
        default=HEADSCALE_VERSION, description="Headscale release installed on the edge"
    )
    deb_sha256: Sha256 | None = Field(
        default=None, description="expected sha256 of the Headscale .deb, on top of the release's"
    )
    derp_urls: list[HttpsUrl] = Field(
        default_factory=list,
        description="public DERP maps to add; empty keeps relaying on the edge's own DERP",
    )


class HomelabConfig(_Model):
    """The machine at home that serves the sites."""

    tailscale_version: Version | None = Field(
        default=None, description="Tailscale version the homelab runs, checked against Headscale"
    )


class TlsConfig(_Model):
    email: Email | None = Field(
        default=None, description="ACME account email (default: alert_email)"
    )
    staging: bool = Field(
        default=False,
        description="use Let's Encrypt's staging CA (untrusted certificates, no rate limits)",
    )


class VolumeConfig(_Model):
    size_gb: int = Field(default=5, ge=1, le=16384)


class LocalBackend(_Model):
    type: Literal["local"] = "local"


class SpacesBackend(_Model):
    """Terraform state in a DigitalOcean Spaces bucket (S3 API)."""

    type: Literal["spaces"]
    bucket: Bucket
    key: StateKey = Field(description="object key of the state file, e.g. 'edge/terraform.tfstate'")
    region: Region


Backend = Annotated[LocalBackend | SpacesBackend, Field(discriminator="type")]


# ---------------------------------------------------------------------------
# Root
# ---------------------------------------------------------------------------


class TunnelConfig(_Model):
    """The whole edge, as one user describes it."""

    name: Name = Field(description="stack name; also names the droplet, volume and project")
    region: Region
    size: Slug = Field(default="s-1vcpu-1gb", description="droplet size slug")
    image: Slug = Field(default="ubuntu-24-04-x64", description="droplet image slug")
    ssh_keys: list[SshKey] = Field(default_factory=list)
    ssh_allowed_cidrs: list[Cidr] = Field(
        default_factory=list, description="sources allowed on TCP 22; empty keeps SSH closed"
    )
    reserved_ipv6: bool = False
    egress_via_reserved_ip: bool = False
    alert_email: Email | None = None
    dns: DnsConfig
    headscale: HeadscaleConfig
    volume: VolumeConfig = VolumeConfig()
    homelab: HomelabConfig = HomelabConfig()
    tls: TlsConfig = TlsConfig()
    backend: Backend = LocalBackend()
    sites: list[Site] = Field(min_length=1)

    @model_validator(mode="after")
    def _cross_checks(self) -> TunnelConfig:
        problems = list(self._problems())
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def _problems(self) -> Iterable[str]:
        zone = self.dns.zone
        seen: dict[str, int] = {}
        for index, site in enumerate(self.sites):
            where = f"sites.{index}.domain"
            if not _within(site.domain, zone):
                yield f"{where}: {site.domain!r} is outside the DNS zone {zone!r}"
            if site.domain in seen:
                yield f"{where}: {site.domain!r} is already used by sites.{seen[site.domain]}"
            seen.setdefault(site.domain, index)
            if site.domain == self.headscale.domain:
                yield f"{where}: {site.domain!r} is the Headscale domain; use another name"
            if site.upstream in (self.name, EDGE_USER):
                yield (
                    f"sites.{index}.upstream: {site.upstream!r} is the edge itself on the "
                    "tailnet; name the homelab machine that serves the site"
                )
        if not _within(self.headscale.domain, zone):
            yield f"headscale.domain: {self.headscale.domain!r} is outside the DNS zone {zone!r}"
        if _within(self.headscale.domain, self.headscale.base_domain):
            yield (
                f"headscale.base_domain: {self.headscale.base_domain!r} must not equal or "
                f"contain the Headscale domain {self.headscale.domain!r} (Headscale refuses "
                "to start); use a separate name such as 'tail.example.net'"
            )

    # -- derived names ------------------------------------------------------

    @property
    def domains(self) -> list[str]:
        """Every public name the edge answers for: sites, then Headscale."""
        return [site.domain for site in self.sites] + [self.headscale.domain]

    @property
    def acme_email(self) -> str | None:
        return self.tls.email or self.alert_email

    @property
    def volume_name(self) -> str:
        return f"{self.name}-state"

    @property
    def headscale_url(self) -> str:
        return f"https://{self.headscale.domain}"

    def record_name(self, domain: str) -> str:
        """The DNS record name of `domain` inside the zone ('@' for the apex)."""
        if domain == self.dns.zone:
            return "@"
        return domain.removesuffix("." + self.dns.zone)

    def upstream_host(self, site: Site) -> str:
        """Where Caddy sends a site: a MagicDNS name or a tailnet address."""
        if site.upstream_is_address:
            return site.upstream
        return f"{site.upstream}.{self.headscale.base_domain}"

    @property
    def upstream_hosts(self) -> list[str]:
        """Each site's upstream host, once, in config order."""
        return list(dict.fromkeys(self.upstream_host(site) for site in self.sites))

    @property
    def upstream_machines(self) -> list[str]:
        """The tailnet machine names the sites use, once, in config order."""
        return list(
            dict.fromkeys(site.upstream for site in self.sites if not site.upstream_is_address)
        )

    def ssh_key_fingerprints(self) -> list[str]:
        return [key for key in self.ssh_keys if _FINGERPRINT.match(key)]

    def ssh_key_names(self) -> list[str]:
        return [key for key in self.ssh_keys if not _FINGERPRINT.match(key)]


def _within(domain: str, zone: str) -> bool:
    return domain == zone or domain.endswith("." + zone)


# ---------------------------------------------------------------------------
# Loading and error reporting
# ---------------------------------------------------------------------------


def load_config(path: Path) -> TunnelConfig:
    """Read and validate a config file; any problem raises `InputError`."""
    source = str(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(source, ["no such file"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(source, [f"cannot read: {exc}"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(source, [f"not valid TOML: {exc}"]) from None
    return parse_config(raw, source)


def parse_config(raw: dict[str, Any], source: str) -> TunnelConfig:
    try:
        return TunnelConfig.model_validate(raw)
    except ValidationError as exc:
        raise InputError(source, format_errors(exc)) from None


def format_errors(exc: ValidationError) -> list[str]:
    """One line per problem: `field.path: what is wrong (what is allowed)`."""
    lines: list[str] = []
    for error in exc.errors(include_url=False):
        loc = list(error["loc"])
        message = str(error["msg"]).removeprefix("Value error, ")
        if not loc:
            lines.extend(message.splitlines())
            continue
        path = ".".join(str(part) for part in loc if not _is_union_tag(part))
        if error["type"] == "extra_forbidden":
            allowed = _allowed_keys(loc[:-1])
            message = f"unknown key (allowed here: {', '.join(allowed)})"
        elif error["type"] == "missing":
            message = "required but missing"
        lines.append(f"{path}: {message}")
    return lines


_BACKENDS: dict[str, type[BaseModel]] = {"local": LocalBackend, "spaces": SpacesBackend}


def _is_union_tag(part: int | str) -> bool:
    return part in _BACKENDS


def _allowed_keys(loc: list[int | str]) -> list[str]:
    model: type[BaseModel] = TunnelConfig
    for part in loc:
        if isinstance(part, int):
            continue
        if part in _BACKENDS:
            model = _BACKENDS[str(part)]
            continue
        annotation = model.model_fields[str(part)].annotation
        nested = _model_in(annotation)
        if nested is None:
            return []
        model = nested
    return sorted(model.model_fields)


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found is not None:
            return found
    return None
