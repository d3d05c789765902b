"""The config tree: one TOML file, validated once, here and nowhere else.

Everything below config/ (render/, infra/, edge/) trusts a `TunnelConfig`;
validators never touch the network so tests need no mocks.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from homelab_tunnel.config.ports import (
    EDGE_FIREWALL_RULES,
    EDGE_PORTS,
    SSH_PORT,
    Span,
    parse_ports,
    port_problems,
)
from homelab_tunnel.config.values import (
    EDGE_USER,
    FINGERPRINT,
    HASH_HOWTO,
    NEAREST_SPACES,
    AgeRecipient,
    AuthPath,
    BasicUser,
    BcryptHash,
    Bucket,
    Cidr,
    Email,
    Fqdn,
    HeaderName,
    HttpsUrl,
    Image,
    MachineName,
    Name,
    PemCertificates,
    Port,
    PublicPorts,
    Region,
    Sha256,
    Slug,
    SpacesRegion,
    SshKey,
    StateKey,
    Upstream,
    Version,
)
from homelab_tunnel.edge.versions import HEADSCALE_VERSION

# TCP ports the edge listens on at every address (sshd, Caddy): nothing else can bind them.
EDGE_TCP_PORTS = (SSH_PORT, *(port for protocol, port, _ in EDGE_PORTS if protocol == "tcp"))
# The CAA identifier of Let's Encrypt, the default CA.
LETS_ENCRYPT_CAA = "letsencrypt.org"


class _Model(BaseModel):
    """Strict types: TOML has real ones, so a quoted number or a string for a switch is a mistake.

    Lax pydantic would turn `port = true` into port 1, accept `port = "8080"`
    and `8080.0`, and read `reserved_ipv6 = "on"` as yes.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


# ---------------------------------------------------------------------------
# Sections
# ---------------------------------------------------------------------------


class BasicLogin(_Model):
    """One user of a site's basic-auth gate: a name and a bcrypt hash, never a password."""

    user: BasicUser = Field(description="the name the visitor logs in with")
    password_hash: BcryptHash = Field(description="bcrypt hash of the password")

    @model_validator(mode="before")
    @classmethod
    def _no_plain_password(cls, data: object) -> object:
        """- `password` (a plain password) is refused, and never shown: give `password_hash`."""
        if isinstance(data, dict) and "password" in data:
            raise ValueError(
                "password: a plain password is not accepted (and not shown); give its bcrypt "
                f"hash as password_hash: {HASH_HOWTO}"
            )
        return data


class ForwardAuth(_Model):
    """The user's own auth server on the tailnet (Authelia, Authentik, tinyauth,
    oauth2-proxy...): Caddy asks it about every request before the site sees it."""

    upstream: MachineName = Field(description="tailnet machine the auth server runs on")
    port: Port = Field(description="port of the auth server on that machine")
    path: AuthPath = Field(description="its check endpoint, e.g. /api/authz/forward-auth")
    copy_headers: list[HeaderName] = Field(
        default_factory=list,
        description="headers of its answer (the user, groups) passed on to the site",
    )


class SiteAuth(_Model):
    """A login in front of a site: basic auth at the edge, or forward auth. One of them."""

    basic: list[BasicLogin] | None = Field(
        default=None, description="a login at the edge: users and their bcrypt hashes"
    )
    forward: ForwardAuth | None = Field(
        default=None, description="your own auth server on the tailnet decides (forward_auth)"
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> SiteAuth:
        """- Exactly one of `basic` and `forward`; `basic` lists at least one user."""
        if self.basic is not None and self.forward is not None:
            raise ValueError("give basic or forward, not both: a site has one gate")
        if self.basic is None and self.forward is None:
            raise ValueError(
                "give basic = [{ user, password_hash }, ...] or forward = { upstream, port, "
                "path }, or drop [sites.auth] to leave the site open"
            )
        if self.basic is not None and not self.basic:
            raise ValueError("basic: list at least one user, or drop [sites.auth]")
        return self

    @property
    def kind(self) -> Literal["basic", "forward"]:
        return "basic" if self.basic is not None else "forward"


class Site(_Model):
    """One allowlisted domain, the tailnet service behind it, and who may reach it."""

    domain: Fqdn = Field(description="public name of the site, inside the DNS zone")
    upstream: Upstream = Field(description="tailnet machine name (MagicDNS label) or address")
    port: Port = Field(description="port the site listens on, on that machine")
    scheme: Literal["http", "https"] = Field(
        default="http", description="how the edge talks to the site over the tailnet"
    )
    allow_cidrs: list[Cidr] = Field(
        default_factory=list,
        description="only these sources reach the site; others get 403 from the edge and the "
        "homelab never sees them; empty: everyone",
    )
    crawlers: Literal["allow", "block-ai"] = Field(
        default="allow",
        description="block-ai: known AI crawlers get 403 and the edge answers /robots.txt, "
        "disallowing them; allow: the homelab's own robots.txt",
    )
    auth: SiteAuth | None = Field(
        default=None, description="a login in front of the site; none: the site is open"
    )
    hsts: bool = Field(
        default=False, description="send Strict-Transport-Security: max-age=31536000 (a year)"
    )

    @property
    def upstream_is_address(self) -> bool:
        return _is_address(self.upstream)


class PortForward(_Model):
    """A public TCP or UDP port (or range) of the edge, forwarded in the kernel into the tailnet.

    The edge DNATs it to the machine's tailnet address with nftables and
    rewrites the source to its own tailnet address, so replies come back
    through the tailnet: the machine sees the edge as the client.
    """

    protocol: Literal["tcp", "udp"] = Field(description="what the edge forwards: TCP or UDP")
    port: PublicPorts = Field(description='public port, or a range "FIRST-LAST"')
    upstream: Upstream = Field(description="tailnet machine name (MagicDNS label) or address")
    upstream_port: Port | None = Field(
        default=None, description="the machine's port (a range's first); default: the same"
    )

    @property
    def first(self) -> int:
        return parse_ports(self.port)[0]

    @property
    def last(self) -> int:
        return parse_ports(self.port)[1]

    @property
    def upstream_first(self) -> int:
        return self.upstream_port or self.first

    @property
    def upstream_last(self) -> int:
        return self.upstream_first + self.last - self.first

    @property
    def upstream_is_address(self) -> bool:
        return _is_address(self.upstream)

    @property
    def span(self) -> Span:
        return Span(self.protocol, self.first, self.last)


class DnsConfig(_Model):
    zone: Fqdn = Field(description="DigitalOcean DNS zone that holds every name")
    create_zone: bool = Field(
        default=False, description="true: the stack creates the zone; false: it must exist"
    )
    ttl: int = Field(default=300, ge=30, le=86400, description="TTL of every record, in seconds")


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
    acme_ca: HttpsUrl | None = Field(
        default=None,
        description="ACME directory of another CA (private or alternative); default Let's Encrypt",
    )
    ca_roots: PemCertificates | None = Field(
        default=None,
        description="PEM roots trusted for tls.acme_ca (its directory's TLS and what it issues); "
        "written to /etc/homelab-tunnel/ca-roots.pem, Caddy's acme_ca_root and the system store",
    )
    caa_issuer: Fqdn = Field(
        default=LETS_ENCRYPT_CAA,
        description="the CA's CAA identifier: the only CA allowed to issue for the edge's names",
    )

    @model_validator(mode="after")
    def _one_ca(self) -> TlsConfig:
        """- `staging` and `acme_ca` exclude each other.
        - `ca_roots` needs `acme_ca`.
        - With `acme_ca`, `caa_issuer` must name that CA (not the default letsencrypt.org).
        """
        if self.acme_ca and self.staging:
            raise ValueError("tls.staging and tls.acme_ca exclude each other: pick one CA")
        if self.ca_roots and not self.acme_ca:
            raise ValueError("tls.ca_roots needs tls.acme_ca (Let's Encrypt needs no extra roots)")
        if self.acme_ca and self.caa_issuer == LETS_ENCRYPT_CAA:
            raise ValueError(
                "tls.caa_issuer: set the CAA identifier of the CA at tls.acme_ca; with the "
                "default letsencrypt.org the DNS records would forbid that CA to issue"
            )
        return self


class BackupConfig(_Model):
    """Off-box copies of Headscale's database and keys, in a DigitalOcean Spaces bucket.

    The bucket costs the Spaces subscription (about $5/month, shared by every
    bucket of the account); the edge gets a key that can touch this bucket only.
    """

    enabled: bool = Field(default=False, description="create the bucket and back up the edge")
    bucket: Bucket | None = Field(
        default=None, description="bucket name (unique in its region); default <name>-backup"
    )
    region: SpacesRegion | None = Field(
        default=None, description="Spaces region of the bucket; another region than the edge's"
    )
    retention_days: int = Field(
        default=30,
        ge=1,
        le=3650,
        description="how far back a restore can go (old object versions, Litestream's history)",
    )
    recipients: list[AgeRecipient] = Field(
        default_factory=list,
        description="age public keys of the owner (`age-keygen -o owner.key` prints one): the key "
        "files are encrypted to them too",
    )
    snapshots_keep: int = Field(
        default=3, ge=1, le=50, description="volume snapshots kept by `homelab-tunnel snapshot`"
    )

    @model_validator(mode="after")
    def _complete_when_enabled(self) -> BackupConfig:
        """- With `enabled = true`, `region` and at least one of `recipients` are required."""
        if self.enabled and self.region is None:
            raise ValueError(
                "backup.region: required when backups are enabled; a Spaces region, ideally "
                "not the edge's own"
            )
        if self.enabled and not self.recipients:
            raise ValueError(
                "backup.recipients: required when backups are enabled; the age public key "
                "(`age-keygen -o owner.key` prints it) of the identity you keep off the edge"
            )
        return self


class ChannelConfig(_Model):
    """The private Spaces bucket the edge reads its day-to-day config from, in place.

    Sites, policy and health settings travel there, so changing them never
    replaces the droplet. The bucket costs the Spaces subscription (about
    $5/month, shared by every bucket of the account: nothing more when backups
    are on already); the edge gets a key that can only read it.
    """

    bucket: Bucket | None = Field(
        default=None, description="bucket name (unique in its region); default <name>-config"
    )
    region: SpacesRegion | None = Field(
        default=None,
        description="Spaces region of the bucket; default the edge's (nyc1, nyc2: nyc3)",
    )


class MetricsConfig(_Model):
    """The edge's Prometheus endpoint, served on its tailnet address to the machines named here.

    Empty `scrapers` (the default): no endpoint at all. Each scraper is a
    tailnet machine (it joins as the Headscale user of its name) or a tailnet
    address; the ACL lets exactly these reach the port, and the endpoint
    refuses anyone else too.
    """

    scrapers: list[Upstream] = Field(
        default_factory=list,
        description=(
            "tailnet machines (or addresses) that may scrape the edge's metrics; none: no endpoint"
        ),
    )
    port: Port = Field(
        default=9180,
        description="TCP port on the edge's tailnet address; not 22, 80 or 443 (sshd and Caddy)",
    )

    @field_validator("port")
    @classmethod
    def _free_port(cls, port: int) -> int:
        if port in EDGE_TCP_PORTS:
            taken = ", ".join(str(taken) for taken in EDGE_TCP_PORTS)
            raise ValueError(
                f"{port} is already taken on every address of the edge (sshd and Caddy "
                f"listen on {taken}); pick another, e.g. 9180"
            )
        return port


class VolumeConfig(_Model):
    size_gb: int = Field(default=5, ge=1, le=16384, description="size of the state volume, in GiB")


class LocalBackend(_Model):
    """Terraform state in a file beside the config."""

    type: Literal["local"] = Field(default="local", description="state in a local file")


class SpacesBackend(_Model):
    """Terraform state in a DigitalOcean Spaces bucket (S3 API)."""

    type: Literal["spaces"] = Field(description="state in a Spaces bucket")
    bucket: Bucket = Field(description="the state bucket (private, created by you)")
    key: StateKey = Field(description="object key of the state file, e.g. 'edge/terraform.tfstate'")
    region: SpacesRegion = Field(description="Spaces region of the state bucket")


Backend = Annotated[LocalBackend | SpacesBackend, Field(discriminator="type")]


# ---------------------------------------------------------------------------
# Root
# ---------------------------------------------------------------------------


class TunnelConfig(_Model):
    """The whole edge, as one user describes it."""

    name: Name = Field(
        description="stack name; also names the droplet, its <name>-state volume and the project"
    )
    region: Region = Field(description="DigitalOcean region of the droplet")
    size: Slug = Field(
        default="s-1vcpu-1gb",
        description="droplet size slug; the default has 1 vCPU and 1 GiB ($6/month)",
    )
    image: Image = Field(default="ubuntu-24-04-x64", description="droplet image slug")
    ssh_keys: list[SshKey] = Field(
        default_factory=list, description="SSH keys in your account, by fingerprint or name"
    )
    ssh_allowed_cidrs: list[Cidr] = Field(
        default_factory=list, description="sources allowed on TCP 22; empty keeps SSH closed"
    )
    reserved_ipv6: bool = Field(
        default=False, description="also reserve an IPv6 address and publish AAAA records"
    )
    egress_via_reserved_ip: bool = Field(
        default=False, description="outbound traffic leaves from the reserved IPv4"
    )
    alert_email: Email | None = Field(
        default=None, description="CPU, memory and disk alerts go here; none: no alerts"
    )
    dns: DnsConfig = Field(description="where the edge's names live")
    headscale: HeadscaleConfig = Field(description="the tailnet's control server on the edge")
    volume: VolumeConfig = Field(default=VolumeConfig(), description="the state volume")
    homelab: HomelabConfig = Field(default=HomelabConfig(), description="the homelab machine")
    tls: TlsConfig = Field(default=TlsConfig(), description="certificates for the edge's names")
    backend: Backend = Field(default=LocalBackend(), description="where Terraform keeps state")
    backup: BackupConfig = Field(default=BackupConfig(), description="off-box backups")
    channel: ChannelConfig = Field(
        default=ChannelConfig(), description="the bucket the edge reads its config from"
    )
    metrics: MetricsConfig = Field(
        default=MetricsConfig(), description="the edge's Prometheus endpoint on the tailnet"
    )
    sites: list[Site] = Field(min_length=1, description="the allowlisted sites, at least one")
    ports: list[PortForward] = Field(
        default_factory=list, description="raw TCP/UDP ports forwarded to tailnet machines"
    )

    @model_validator(mode="after")
    def _cross_checks(self) -> TunnelConfig:
        """- No SSH key, SSH network, DERP URL, network of a site's `allow_cidrs`, basic-auth
          user or forward-auth header is listed twice (networks compare normalised:
          `203.0.113.7` is `203.0.113.7/32`).
        - Every site's domain and `headscale.domain` lie inside `dns.zone`; no two sites
          share a domain, and no site uses `headscale.domain`.
        - `headscale.base_domain` neither equals nor contains `headscale.domain`.
        - A site's `upstream` and a forward-auth `upstream` are not the edge itself (the
          stack `name`, or `edge`).
        - With backups on, `channel.bucket` is not the backup bucket.
        """
        problems = list(self._problems())
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def _problems(self) -> Iterable[str]:
        yield from _duplicates("ssh_keys", self.ssh_keys)
        yield from _duplicates("ssh_allowed_cidrs", self.ssh_allowed_cidrs)
        yield from _duplicates("headscale.derp_urls", self.headscale.derp_urls)
        yield from _duplicates("metrics.scrapers", self.metrics.scrapers)
        yield from self._site_problems()
        yield from self._port_problems()
        for index, scraper in enumerate(self.metrics.scrapers):
            if scraper in (self.name, EDGE_USER):
                yield (
                    f"metrics.scrapers.{index}: {scraper!r} is the edge itself; name the "
                    "tailnet machine that runs Prometheus"
                )
        if self.backup.enabled and self.channel_bucket == self.backup_bucket:
            yield (
                f"channel.bucket: {self.channel_bucket!r} is the backup bucket too; the edge "
                "may write backups but must only read its config: give them different names"
            )
        if not _within(self.headscale.domain, self.dns.zone):
            yield (
                f"headscale.domain: {self.headscale.domain!r} is outside the DNS zone "
                f"{self.dns.zone!r}"
            )
        if _within(self.headscale.domain, self.headscale.base_domain):
            yield (
                f"headscale.base_domain: {self.headscale.base_domain!r} must not equal or "
                f"contain the Headscale domain {self.headscale.domain!r} (Headscale refuses "
                "to start); use a separate name such as 'tail.example.net'"
            )

    def _site_problems(self) -> Iterable[str]:
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
            yield from _site_policy_problems(f"sites.{index}", site, (self.name, EDGE_USER))

    def _port_problems(self) -> Iterable[str]:
        ssh_open = bool(self.ssh_allowed_cidrs)
        yield from port_problems(
            [forward.span for forward in self.ports],
            ssh_open=ssh_open,
            firewall_rules=EDGE_FIREWALL_RULES + ssh_open,
        )
        for index, forward in enumerate(self.ports):
            if forward.upstream_last > 65535:
                yield (
                    f"ports.{index}.upstream_port: {forward.port} is "
                    f"{forward.last - forward.first + 1} ports, so the upstream's would run "
                    f"from {forward.upstream_first} to {forward.upstream_last}, past 65535; "
                    "give a lower upstream_port"
                )
            if forward.upstream in (self.name, EDGE_USER):
                yield (
                    f"ports.{index}.upstream: {forward.upstream!r} is the edge itself on the "
                    "tailnet; name the homelab machine that runs the service"
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
    def backup_bucket(self) -> str:
        return self.backup.bucket or f"{self.name}-backup"

    @property
    def channel_bucket(self) -> str:
        return self.channel.bucket or f"{self.name}-config"

    @property
    def channel_region(self) -> str:
        """The configured region, or the one with Spaces in the edge's city."""
        return self.channel.region or NEAREST_SPACES[self.region]

    @property
    def headscale_url(self) -> str:
        return f"https://{self.headscale.domain}"

    def record_name(self, domain: str) -> str:
        """The DNS record name of `domain` inside the zone ('@' for the apex)."""
        if domain == self.dns.zone:
            return "@"
        return domain.removesuffix("." + self.dns.zone)

    def upstream_host(self, target: Site | PortForward) -> str:
        """Where a site or port goes: a MagicDNS name or a tailnet address."""
        if target.upstream_is_address:
            return target.upstream
        return self.machine_host(target.upstream)

    def machine_host(self, machine: str) -> str:
        """A tailnet machine's MagicDNS name."""
        return f"{machine}.{self.headscale.base_domain}"

    @property
    def forward_auths(self) -> list[ForwardAuth]:
        """The forward-auth servers the sites ask, in config order."""
        return [site.auth.forward for site in self.sites if site.auth and site.auth.forward]

    @property
    def upstream_hosts(self) -> list[str]:
        """Each host the edge forwards to (sites, ports, then auth servers), once, in order."""
        hosts = [self.upstream_host(target) for target in self._targets]
        hosts += [self.machine_host(forward.upstream) for forward in self.forward_auths]
        return list(dict.fromkeys(hosts))

    @property
    def upstream_machines(self) -> list[str]:
        """The tailnet machine names the sites, ports and auth servers use, once, in order."""
        machines = [target.upstream for target in self._targets if not target.upstream_is_address]
        machines += [forward.upstream for forward in self.forward_auths]
        return list(dict.fromkeys(machines))

    @property
    def _targets(self) -> list[Site | PortForward]:
        return [*self.sites, *self.ports]

    def ssh_key_fingerprints(self) -> list[str]:
        return [key for key in self.ssh_keys if FINGERPRINT.fullmatch(key)]

    def ssh_key_names(self) -> list[str]:
        return [key for key in self.ssh_keys if not FINGERPRINT.fullmatch(key)]


def _site_policy_problems(where: str, site: Site, edge_names: tuple[str, ...]) -> Iterable[str]:
    yield from _duplicates(f"{where}.allow_cidrs", site.allow_cidrs)
    if site.auth is None:
        return
    first: dict[str, int] = {}
    for index, login in enumerate(site.auth.basic or []):
        if login.user in first:
            yield (
                f"{where}.auth.basic.{index}.user: {login.user!r} is already listed as "
                f"{where}.auth.basic.{first[login.user]}"
            )
        first.setdefault(login.user, index)
    forward = site.auth.forward
    if forward is not None:
        if forward.upstream in edge_names:
            yield (
                f"{where}.auth.forward.upstream: {forward.upstream!r} is the edge itself; name "
                "the tailnet machine the auth server runs on"
            )
        yield from _duplicates(
            f"{where}.auth.forward.copy_headers", [h.lower() for h in forward.copy_headers]
        )


def _duplicates(field: str, values: Iterable[str]) -> Iterable[str]:
    """A value listed twice is a mistake somewhere: name both places.

    Values are compared as their types normalised them, so `203.0.113.7`
    repeats `203.0.113.7/32` and fingerprints compare in any case.
    """
    first: dict[str, int] = {}
    for index, value in enumerate(values):
        if value in first:
            yield f"{field}.{index}: {value!r} is already listed as {field}.{first[value]}"
        first.setdefault(value, index)


def _is_address(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _within(domain: str, zone: str) -> bool:
    return domain == zone or domain.endswith("." + zone)
