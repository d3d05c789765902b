"""Headscale's ACL policy: the edge may reach exactly the site upstreams, nothing else."""

from __future__ import annotations

import ipaddress
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


def machine_alias(machine: str) -> str:
    """A machine in the policy: its Headscale user (it joins as the user of its name) or address."""
    try:
        ipaddress.ip_address(machine)
    except ValueError:
        return f"{machine}@"
    return machine


def render_policy(config: TunnelConfig) -> str:
    acls = [{"action": "accept", "src": [f"{EDGE_USER}@"], "dst": upstream_destinations(config)}]
    header = (
        f"// Headscale ACL policy for the {config.name} edge, written by homelab-tunnel.\n"
        f"// The edge ({EDGE_USER}@) may open connections to exactly the site upstreams and\n"
        "// ports, and the sites' forward-auth servers; nothing else is allowed. Each\n"
        "// upstream machine joins as the user of its own name (homelab-tunnel\n"
        "// join-command prints how).\n"
    )
    if config.metrics.scrapers:
        acls.append(
            {
                "action": "accept",
                "src": [machine_alias(scraper) for scraper in config.metrics.scrapers],
                "dst": [f"{EDGE_USER}@:{config.metrics.port}"],
            }
        )
        header += (
            "// The machines in metrics.scrapers may reach the edge's Prometheus endpoint,\n"
            "// that port only.\n"
        )
    return header + json.dumps({"acls": acls}, indent=2) + "\n"
