"""Each site as one plain document: what plan-summary compares and doctor names.

The config object carries this list beside the rendered files, so a plan's
before and after say, in data, which sites a change adds, removes or alters,
without reading a Caddyfile. Nothing secret goes in.
"""

from __future__ import annotations

from typing import Any

from homelab_tunnel.config import Site, TunnelConfig


def site_document(config: TunnelConfig, site: Site) -> dict[str, Any]:
    return {
        "domain": site.domain,
        "upstream": site.upstream,
        "upstream_host": config.upstream_host(site),
        "port": site.port,
        "scheme": site.scheme,
    }


def site_documents(config: TunnelConfig) -> list[dict[str, Any]]:
    return [site_document(config, site) for site in config.sites]
