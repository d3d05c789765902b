"""The edge's day-to-day config as one document: what Terraform writes to the config bucket.

Everything a user changes day to day and the edge can take without a new
droplet: the Caddyfile, Headscale's ACL policy, the health agent's settings,
the Headscale users the upstream machines join as, the forwarded ports (a
file the edge's port agent reads), and the site and port lists (data, for
plan-summary and doctor). The edge agent (edge/config_agent.py) installs
it in place. Its version is the first 12 hex digits of the SHA-256 of the rest
of the document: the same config always has the same version, and `doctor`
can say whether the edge runs the config in front of it.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from homelab_tunnel.config import TunnelConfig
from homelab_tunnel.edge.channel import FORMAT
from homelab_tunnel.render.caddyfile import render_caddyfile
from homelab_tunnel.render.edge_env import render_health_env
from homelab_tunnel.render.policy import render_policy
from homelab_tunnel.render.ports import port_documents, render_ports
from homelab_tunnel.render.sites import site_documents


def edge_config_document(config: TunnelConfig) -> dict[str, Any]:
    """The document, version included."""
    document: dict[str, Any] = {
        "format": FORMAT,
        "edge": config.name,
        "sites": site_documents(config),
        "ports": port_documents(config),
        "machines": config.upstream_machines,
        "files": {
            "Caddyfile": render_caddyfile(config),
            "policy.hujson": render_policy(config),
            "health.env": render_health_env(config),
            "ports.json": render_ports(config),
        },
    }
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
    return {"version": hashlib.sha256(canonical).hexdigest()[:12], **document}


def render_edge_config(config: TunnelConfig) -> str:
    """The object's body: indented, so a plan shows a change line by line."""
    return json.dumps(edge_config_document(config), indent=1) + "\n"


def config_version(config: TunnelConfig) -> str:
    return str(edge_config_document(config)["version"])
