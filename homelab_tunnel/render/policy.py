"""Headscale's ACL policy: the edge may reach exactly the site upstreams, nothing else."""

from __future__ import annotations

import json
from collections import defaultdict

from homelab_tunnel.config import EDGE_USER, TunnelConfig


def upstream_destinations(config: TunnelConfig) -> list[str]:
    """Policy destinations: each upstream machine (by user, or by address) and its ports,
    the forward-auth servers' among them."""
    ports: dict[str, set[int]] = defaultdict(set)
    for site in config.sites:
        alias = site.upstream if site.upstream_is_address else f"{site.upstream}@"
        ports[alias].add(site.port)
    for forward in config.forward_auths:
        ports[f"{forward.upstream}@"].add(forward.port)
    return [
        f"{alias}:{','.join(str(port) for port in sorted(ports[alias]))}" for alias in sorted(ports)
    ]


def render_policy(config: TunnelConfig) -> str:
    policy = {
        "acls": [
            {
                "action": "accept",
                "src": [f"{EDGE_USER}@"],
                "dst": upstream_destinations(config),
            }
        ]
    }
    header = (
        f"// Headscale ACL policy for the {config.name} edge, written by homelab-tunnel.\n"
        f"// The edge ({EDGE_USER}@) may open connections to exactly the site upstreams and\n"
        "// ports, and the sites' forward-auth servers; nothing else is allowed. Each\n"
        "// upstream machine joins as the user of its own name (homelab-tunnel\n"
        "// join-command prints how).\n"
    )
    return header + json.dumps(policy, indent=2) + "\n"
