"""What the droplet gets, put into the edge box exactly as cloud-init and systemd would.

The lab config is a TOML file written at run time (Pebble's directory and
roots only exist once Pebble runs) and rendered by the project's own code into
user_data and the config object. The droplet gets user_data through
cloud-init byte for byte; the loader then fetches the software from the lab's
store, as on a droplet. The only substitutions are Terraform's own: the keys
it makes (the lab store's IAM users) and the edge secret.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import tomli_w

from homelab_tunnel.config import TunnelConfig, load_config
from homelab_tunnel.payload import user_data
from homelab_tunnel.render.secrets import (
    BACKUP_ACCESS_KEY,
    BACKUP_SECRET_KEY,
    CHANNEL_ACCESS_KEY,
    CHANNEL_SECRET_KEY,
    EDGE_SECRET,
    fill,
)
from support.lab.addresses import HOME_ROUTER_WAN, RESERVED_IP, VISITOR
from support.lab.gates import AUTH_NAME, AUTH_PORT, policy_sites
from support.lab.pebble import DIRECTORY_URL

ZONE = "lab.example"
SITES = (("blog", 8080), ("photos", 2342))
# The policy lab's sites: each a kind of policy, on the same homelab app.
POLICY_SITES = policy_sites(ZONE, VISITOR.address)
LAB_NAME = "lab-edge"
# The lab store answers as this Spaces region: the config bucket and the backups.
SPACES_REGION = "ams3"
STATE_VOLUME_LIST = Path(__file__).resolve().parents[3] / "cloud-init" / "state-volume.list"


def lab_config_document(
    ca_roots: str,
    *,
    headscale_version: str | None = None,
    backup_recipient: str | None = None,
    sites: list[dict[str, Any]] | None = None,
    policy: bool = False,
    ports: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The lab's edge: two sites on one homelab, certificates from Pebble.

    `headscale_version`: another release than the pinned one; `backup_recipient`:
    backups on, to a bucket in SPACES_REGION, key files encrypted to this owner;
    `sites`: other sites than the two; `policy`: the POLICY_SITES too, and the auth
    server's login site; `ports`: `[[ports]]` entries.
    """
    document = _base_document(ca_roots)
    if sites is not None:
        document["sites"] = sites
    if policy:
        document["sites"] += [
            {"domain": f"{name}.{ZONE}", "upstream": "homelab", "port": port, **keys}
            for name, port, keys in POLICY_SITES
        ]
        document["sites"].append(
            {"domain": f"{AUTH_NAME}.{ZONE}", "upstream": "homelab", "port": AUTH_PORT}
        )
    if ports:
        document["ports"] = ports
    if headscale_version:
        document["headscale"]["version"] = headscale_version
    if backup_recipient:
        document["backup"] = {
            "enabled": True,
            "region": SPACES_REGION,
            "recipients": [backup_recipient],
        }
    return document


def _base_document(ca_roots: str) -> dict[str, Any]:
    return {
        "name": LAB_NAME,
        "region": "fra1",
        "channel": {"region": SPACES_REGION},
        "ssh_allowed_cidrs": [f"{HOME_ROUTER_WAN.address}/32"],
        "alert_email": f"ops@{ZONE}",
        "dns": {"zone": ZONE},
        "headscale": {"domain": f"headscale.{ZONE}", "base_domain": f"tail.{ZONE}"},
        "homelab": {"tailscale_version": "1.102.3"},
        "tls": {"acme_ca": DIRECTORY_URL, "ca_roots": ca_roots, "caa_issuer": f"pebble.{ZONE}"},
        "sites": [
            {"domain": f"{name}.{ZONE}", "upstream": "homelab", "port": port}
            for name, port in SITES
        ],
        # The homelab runs Prometheus: it may scrape the edge's metrics, nobody else.
        "metrics": {"scrapers": ["homelab"]},
    }


def write_lab_config(path: Path, document: dict[str, Any]) -> TunnelConfig:
    """Write the TOML a user would, and load it the way the CLI does."""
    path.write_bytes(tomli_w.dumps(document).encode())
    return load_config(path)


def droplet_user_data(
    config: TunnelConfig, keys: dict[str, tuple[str, str]], edge_secret: str
) -> str:
    """user_data as the droplet receives it: rendered, then Terraform's replacements.

    `keys`: the Spaces keys Terraform made, by purpose (`config`, and `backup`);
    `edge_secret`: a random value of the lab's, as DigitalOcean's would be.
    """
    values = {
        CHANNEL_ACCESS_KEY: keys["config"][0],
        CHANNEL_SECRET_KEY: keys["config"][1],
        EDGE_SECRET: edge_secret,
    }
    if "backup" in keys:
        values |= {BACKUP_ACCESS_KEY: keys["backup"][0], BACKUP_SECRET_KEY: keys["backup"][1]}
    return fill(user_data(config), values)


def volume_directories() -> dict[str, str]:
    """System path -> folder on the state volume: the list bootstrap's volume step reads."""
    pairs = [
        line.split()
        for line in STATE_VOLUME_LIST.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    return {system: volume for volume, system in pairs}


def hosts_file(domains: Iterable[str], extra: dict[str, str]) -> str:
    """/etc/hosts for every box: `domains` (the records an apply made) at the reserved IP, then
    `extra`."""
    lines = ["127.0.0.1 localhost", "::1 localhost", f"{RESERVED_IP} {' '.join(domains)}"]
    lines += [f"{address} {name}" for name, address in extra.items()]
    return "\n".join(lines) + "\n"


def first_domains() -> list[str]:
    """The names the lab config's first apply makes records for: its sites and Headscale's."""
    return [f"{name}.{ZONE}" for name, _ in SITES] + [f"headscale.{ZONE}"]
