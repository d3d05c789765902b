"""Every config shape the tool supports: each combination that changes the resource set.

A shape is the example config with a few keys changed, on top of BASE: the
zone created by the stack and the SSH key given by fingerprint, so the base
has no data sources and Terraform can plan it with no API at all. Adding a
shape (backups, say, once they exist) is one line in SHAPES.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from homelab_tunnel.config import TunnelConfig, parse_config
from support.config import example_raw, merged

# The key `homelab-admin` of the fake DigitalOcean account (support.fake_digitalocean).
FINGERPRINT = "3b:16:bf:e4:8b:00:8b:b8:59:8c:a9:d3:f0:19:45:fa"
KEY_NAME = "homelab-admin"
SPACES = {
    "type": "spaces",
    "bucket": "homelab-state",
    "key": "edge/terraform.tfstate",
    "region": "fra1",
}
SITE = {"domain": "blog.example.com", "upstream": "homelab", "port": 8080}
APEX_SITE = {"domain": "example.com", "upstream": "homelab", "port": 80}
MANY_SITES = [
    {"domain": f"s{n}.example.com", "upstream": "homelab", "port": 8000 + n} for n in range(12)
]
SSH_FROM = ["203.0.113.7/32", "2001:db8::/48"]
PORTS = [
    {"protocol": "udp", "port": 27015, "upstream": "gtr6"},
    {"protocol": "udp", "port": "2456-2457", "upstream": "gtr6"},
    {"protocol": "tcp", "port": 2222, "upstream": "homelab", "upstream_port": 22},
]

# Backups off in the base: their bucket is created through the Spaces (S3) API,
# which the fake does not serve; the "backups" shape plans it.
BASE: dict[str, Any] = {
    "dns": {"create_zone": True},
    "ssh_keys": [FINGERPRINT],
    "backup": {"enabled": False},
}
BACKUPS = {"enabled": True}


@dataclass(frozen=True)
class Shape:
    name: str
    changes: dict[str, Any] = field(default_factory=dict)

    def raw(self) -> dict[str, Any]:
        return merged(merged(example_raw(), BASE), self.changes)

    def config(self) -> TunnelConfig:
        return parse_config(self.raw(), f"{self.name}.toml")

    @property
    def has_data_sources(self) -> bool:
        """An existing zone or a key by name is read from the API at plan time."""
        config = self.config()
        return not config.dns.create_zone or bool(config.ssh_key_names())


def shape(name: str, **changes: Any) -> Shape:
    return Shape(name, changes)


SHAPES: tuple[Shape, ...] = (
    shape("base"),  # created zone, key by fingerprint, alerts, SSH closed, IPv4, local state
    shape("example", dns={"create_zone": False}, ssh_keys=[KEY_NAME], backup=BACKUPS),  # as shipped
    shape("reserved-ipv6", reserved_ipv6=True),
    shape("egress", egress_via_reserved_ip=True),
    shape("existing-zone", dns={"create_zone": False}),
    shape("no-alerts", alert_email=None),
    shape("ssh-allowlisted", ssh_allowed_cidrs=SSH_FROM),
    shape("key-by-name", ssh_keys=[KEY_NAME]),
    shape("keys-by-name-and-fingerprint", ssh_keys=[KEY_NAME, "0f:" * 15 + "0f"]),
    shape("no-keys", ssh_keys=[]),
    shape("spaces-backend", backend=SPACES),
    shape("backups", backup=BACKUPS),
    shape("one-site", sites=[SITE]),
    shape("many-sites", sites=MANY_SITES),
    shape("apex-site", sites=[APEX_SITE, SITE]),
    shape("forwarded-ports", ports=PORTS),
    shape(
        "everything-on",
        reserved_ipv6=True,
        egress_via_reserved_ip=True,
        ssh_allowed_cidrs=SSH_FROM,
        backend=SPACES,
        backup=BACKUPS,
        sites=[*MANY_SITES, APEX_SITE | {"upstream": "100.64.0.5", "scheme": "https"}],
        ports=PORTS,
    ),
    shape("everything-off", alert_email=None, ssh_keys=[], sites=[SITE], volume={"size_gb": 1}),
)
BY_NAME = {item.name: item for item in SHAPES}

# Shape -> its synthesized cdk.tf.json (the session fixture `synthesized`).
Synth = Callable[[Shape], dict[str, Any]]
