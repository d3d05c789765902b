"""Headscale's config.yaml for the edge, from render/templates/headscale.yaml.

Keys follow `config-example.yaml` of the pinned Headscale release (0.29.x);
a removed key makes Headscale refuse to start, and tests compare against a
copy of that file.
"""

from __future__ import annotations

import json

from homelab_tunnel.config import TunnelConfig
from homelab_tunnel.render.templates import fill

HEADSCALE_LISTEN = "127.0.0.1:8080"
# Prometheus metrics, loopback only: the edge's exporter passes them on to the scrapers.
HEADSCALE_METRICS = "127.0.0.1:9090"
POLICY_PATH = "/etc/headscale/policy.hujson"
DERP_REGION_ID = 999


def render_headscale_config(config: TunnelConfig) -> str:
    hs = config.headscale
    return fill(
        "headscale.yaml",
        {
            "version": hs.version,
            "name": config.name,
            "server_url": config.headscale_url,
            "listen_addr": HEADSCALE_LISTEN,
            "metrics_listen_addr": HEADSCALE_METRICS,
            "derp_region_id": str(DERP_REGION_ID),
            "derp_urls": json.dumps(list(hs.derp_urls)),
            "policy_path": POLICY_PATH,
            "base_domain": hs.base_domain,
        },
    )
