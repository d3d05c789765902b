"""A first config from a few answers: what `homelab-tunnel init` writes, and how it checks them.

Every answer is checked by the config model itself (`parse_config`), inside a
whole config whose other fields hold the answers given so far or a valid
stand-in, so an answer gets exactly the line `check` would print for it, and
the written file is validated again as text before it is written. No rule
lives here. Pure: no I/O.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field, replace
from typing import Any

from homelab_tunnel.config.load import parse_config
from homelab_tunnel.config.model import TunnelConfig
from homelab_tunnel.config.values import SPACES_REGIONS
from homelab_tunnel.edge.versions import HEADSCALE_VERSION
from homelab_tunnel.errors import InputError

# A Spaces region near each edge region, but not the same one: one outage
# should not take the edge and its backups together.
NEARBY_SPACES = {
    "ams3": "fra1", "fra1": "ams3", "lon1": "ams3",
    "nyc1": "tor1", "nyc2": "tor1", "nyc3": "tor1", "tor1": "nyc3", "atl1": "nyc3",
    "sfo2": "sfo3", "sfo3": "sfo2",
    "sgp1": "syd1", "syd1": "sgp1", "blr1": "sgp1",
}  # fmt: skip

# Stand-ins for what has not been answered yet: valid, so they never hide or
# cause a problem with the answer being checked. Never written.
_STAND_IN_RECIPIENT = "age1qllq5y79pfkevgcwmywkhns8c4n9jxd80ts8m2ajktu5edma3vlq7creqp"


@dataclass(frozen=True)
class SiteAnswer:
    domain: str
    upstream: str
    port: int | str  # a str only when the answer was not a number: the model says so
    https: bool = False

    def raw(self) -> dict[str, Any]:
        site: dict[str, Any] = {"domain": self.domain, "upstream": self.upstream}
        site["port"] = self.port
        if self.https:
            site["scheme"] = "https"
        return site


@dataclass(frozen=True)
class Answers:
    """What the user said; None is "not asked yet" (or, for the optional ones, "none")."""

    name: str | None = None
    region: str | None = None
    zone: str | None = None
    headscale_domain: str | None = None
    base_domain: str | None = None
    sites: tuple[SiteAnswer, ...] = ()
    email: str | None = None
    backups: bool = False
    backup_region: str | None = None
    recipients: tuple[str, ...] = field(default=())

    @property
    def missing(self) -> list[str]:
        """The answers nothing can stand in for, as the flags that give them."""
        given = {
            "--name": self.name,
            "--region": self.region,
            "--zone": self.zone,
            "--site": self.sites,
        }
        missing = [flag for flag, value in given.items() if not value]
        if self.backups and not self.recipients:
            missing.append("--backup-recipient")
        return missing

    def with_defaults(self) -> Answers:
        """The derived answers filled in: Headscale's names from the zone, the backup region."""
        zone = self.zone or "example.com"
        return replace(
            self,
            headscale_domain=self.headscale_domain or default_headscale_domain(zone),
            base_domain=self.base_domain or default_base_domain(zone),
            backup_region=self.backup_region
            or (default_backup_region(self.region) if self.backups else None),
        )


def default_headscale_domain(zone: str) -> str:
    return f"headscale.{zone}"


def default_base_domain(zone: str) -> str:
    """MagicDNS names live under a name of their own, never the Headscale domain's."""
    return f"tail.{zone}"


def default_backup_region(region: str | None) -> str:
    return NEARBY_SPACES.get(region or "", SPACES_REGIONS[0])


def raw_config(answers: Answers) -> dict[str, Any]:
    """The TOML data of the answers, with a valid stand-in wherever one is missing."""
    zone = answers.zone or "example.com"
    sites = answers.sites or (SiteAnswer(f"www.{zone}", "homelab", 8080),)
    raw: dict[str, Any] = {
        "name": answers.name or "homelab-edge",
        "region": answers.region or "fra1",
        "dns": {"zone": zone},
        "headscale": {
            "domain": answers.headscale_domain or default_headscale_domain(zone),
            "base_domain": answers.base_domain or default_base_domain(zone),
        },
        "sites": [site.raw() for site in sites],
    }
    if answers.email is not None:
        raw["alert_email"] = answers.email
    if answers.backups:
        raw["backup"] = {
            "enabled": True,
            "region": answers.backup_region or default_backup_region(answers.region),
            "recipients": list(answers.recipients or (_STAND_IN_RECIPIENT,)),
        }
    return raw


def problems_with(answers: Answers, field_path: str) -> list[str]:
    """`check`'s problems (`field: what is wrong`) about `field_path` and what lies under it."""
    try:
        parse_config(raw_config(answers), "")
    except InputError as exc:
        return [problem for problem in exc.problems if _about(problem, field_path)]
    return []


def _about(problem: str, field_path: str) -> bool:
    path = problem.partition(": ")[0]
    return path == field_path or path.startswith(field_path + ".")


# ---------------------------------------------------------------------------
# The file
# ---------------------------------------------------------------------------


def _string(value: str) -> str:
    """A TOML basic string: JSON's escapes are all valid in TOML."""
    return json.dumps(value, ensure_ascii=False)


def _strings(values: tuple[str, ...]) -> str:
    return "[" + ", ".join(_string(value) for value in values) + "]"


def starter_toml(answers: Answers) -> str:
    """The commented config for complete answers (see `Answers.missing`)."""
    assert not answers.missing, answers.missing  # callers ask for what is missing first
    answers = answers.with_defaults()
    assert answers.name and answers.region and answers.zone
    assert answers.headscale_domain and answers.base_domain
    email = (
        f"alert_email = {_string(answers.email)}"
        if answers.email
        else '# alert_email = "ops@example.com"'
    )
    return "\n".join(
        [
            _top(answers.name, answers.region, email),
            _dns(answers.zone),
            _headscale(answers.headscale_domain, answers.base_domain),
            _rest(),
            _backup(answers),
            *(_site(site) for site in answers.sites),
        ]
    )


def _top(name: str, region: str, email: str) -> str:
    return f"""\
# homelab-tunnel: one file describes the whole edge.
# Written by `homelab-tunnel init`. Next: `homelab-tunnel check --config FILE`
# validates it, `homelab-tunnel preflight` checks the account, `homelab-tunnel
# diff` shows the plan and `homelab-tunnel deploy` applies it.

# Stack name. Also names the droplet, its state volume ("<name>-state")
# and the DigitalOcean project.
name = {_string(name)}
# DigitalOcean region slug; pick the one closest to the homelab.
region = {_string(region)}
# s-1vcpu-1gb (1 vCPU, 1 GiB, $6/month) runs Headscale + Caddy + Tailscale comfortably.
size = "s-1vcpu-1gb"
image = "ubuntu-24-04-x64"
# SSH keys already in your DigitalOcean account, by fingerprint or by name.
# ssh_keys = ["my-laptop"]
# Sources allowed on TCP 22. Empty keeps SSH closed (use the DigitalOcean
# console, or add your address /32).
ssh_allowed_cidrs = []
# Monitor alerts (CPU, memory, disk) go here, and Let's Encrypt's account
# email; leave out to create no alerts.
{email}
# Also reserve an IPv6 address and publish AAAA records for it.
reserved_ipv6 = false
# Send outbound traffic from the reserved IPv4 (via DigitalOcean's anchor gateway).
egress_via_reserved_ip = false
"""


def _dns(zone: str) -> str:
    return f"""\
[dns]
# A DigitalOcean DNS zone holding every name below.
zone = {_string(zone)}
# false: the zone already exists in your account; true: this stack creates it
# (then point the domain's name servers at ns1-3.digitalocean.com).
create_zone = false
"""


def _headscale(domain: str, base_domain: str) -> str:
    return f"""\
[headscale]
# Public name of the Headscale control server (proxied by Caddy on the edge).
domain = {_string(domain)}
# MagicDNS base domain of the tailnet; must not contain the Headscale domain.
base_domain = {_string(base_domain)}
# Headscale release on the edge (default: the version this tool pins and tests).
# version = "{HEADSCALE_VERSION}"
# Public DERP maps, opt-in. Empty: relays fall back to the edge's own embedded DERP.
derp_urls = []
"""


def _rest() -> str:
    return """\
[homelab]
# Tailscale version on the homelab machine; `check` fails when Headscale would refuse it.
# tailscale_version = "1.90.2"

[tls]
# Let's Encrypt's staging CA while experimenting: untrusted certificates, no rate limits.
staging = false

[volume]
# Holds Headscale's database and keys, Tailscale's state and Caddy's certificates.
size_gb = 5
"""


def _backup(answers: Answers) -> str:
    head = """\
[backup]
# Off-box backups of Headscale's database (streamed by Litestream within about
# a second of each write) and of its private keys (age-encrypted on the edge),
# in a private Spaces bucket the stack creates; a new droplet on a blank volume
# restores from it before Headscale starts. Costs the Spaces subscription
# (about $5/month, shared by every bucket of the account). Apply with your own
# Spaces key exported as SPACES_ACCESS_KEY_ID / SPACES_SECRET_ACCESS_KEY.
"""
    if not answers.backups:
        return (
            head
            + """\
# To turn them on: enabled = true, a region and your age public key(s).
enabled = false
# region = "ams3"
# recipients = ["age1..."]
"""
        )
    assert answers.backup_region is not None
    return (
        head
        + f"""\
enabled = true
# A Spaces region other than the edge's, so one outage does not take both.
region = {_string(answers.backup_region)}
# How far back a restore can go.
retention_days = 30
# Your age public key(s) (`age-keygen -o owner.key` prints one). Keep owner.key
# off the edge; it decrypts the key backups by hand.
recipients = {_strings(answers.recipients)}
"""
    )


def _site(site: SiteAnswer) -> str:
    scheme = 'scheme = "https"\n' if site.https else ""
    return f"""\
# A public domain, and the tailnet machine + port that serves it.
[[sites]]
domain = {_string(site.domain)}
upstream = {_string(site.upstream)}
port = {site.port}
{scheme}"""


def read_back(text: str, source: str) -> TunnelConfig:
    """The config as `check` will read the written file: the final proof before writing."""
    return parse_config(tomllib.loads(text), source)
