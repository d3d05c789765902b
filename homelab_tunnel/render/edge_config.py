"""The edge's day-to-day config as one document: what Terraform writes to the config bucket.

Everything a user changes day to day and the edge can take without a new
droplet: the Caddyfile, Headscale's ACL policy, the health agent's and the
metrics exporter's settings, the Headscale users the upstream machines join
as, the forwarded ports (a file the edge's port agent reads), and the site
and port lists and metrics scrapers (data, for plan-summary and doctor). The
edge agent (edge/config_agent.py) installs
it in place. Its version is the first 12 hex digits of the SHA-256 of the rest
of the document: the same config always has the same version, and `doctor`
can say whether the edge runs the config in front of it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from homelab_tunnel.config import TunnelConfig
from homelab_tunnel.edge.channel import FORMAT
from homelab_tunnel.render.caddyfile import render_caddyfile
from homelab_tunnel.render.crawlers import AiCrawlers
from homelab_tunnel.render.edge_env import render_health_env, render_metrics_env
from homelab_tunnel.render.policy import render_policy
from homelab_tunnel.render.ports import port_documents, render_ports
from homelab_tunnel.render.sites import site_documents


def edge_config_document(config: TunnelConfig, crawlers: AiCrawlers) -> dict[str, Any]:
    """The document, version included; `crawlers`: the AI crawler list (crawlers.py)."""
    return with_version(
        {
            "format": FORMAT,
            "edge": config.name,
            "sites": site_documents(config),
            "ports": port_documents(config),
            "machines": config.upstream_machines,
            "metrics": {"port": config.metrics.port, "scrapers": list(config.metrics.scrapers)},
            "files": {
                "Caddyfile": render_caddyfile(config, crawlers),
                "policy.hujson": render_policy(config),
                "health.env": render_health_env(config),
                "metrics.env": render_metrics_env(config),
                "ports.json": render_ports(config),
            },
        }
    )


def with_version(document: Mapping[str, Any]) -> dict[str, Any]:
    """`document` with the version its other fields make (a `version` in it is replaced)."""
    rest = {key: value for key, value in document.items() if key != "version"}
    canonical = json.dumps(rest, sort_keys=True, separators=(",", ":")).encode()
    return {"version": hashlib.sha256(canonical).hexdigest()[:12], **rest}


def edge_config_body(document: Mapping[str, Any]) -> str:
    """The object's body: indented, so a plan shows a change line by line."""
    return json.dumps(document, indent=1) + "\n"


def render_edge_config(config: TunnelConfig, crawlers: AiCrawlers) -> str:
    return edge_config_body(edge_config_document(config, crawlers))
