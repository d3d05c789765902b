"""Headscale's ACL policy: the edge may reach exactly the site and port upstreams, nothing else.

One rule per protocol (`proto`, policy v2): the sites and forwarded TCP
ports over TCP, forwarded UDP ports over UDP. Without `proto` a rule allows
TCP, UDP and ICMP alike (hscontrol/policy/v2/types.go, toIANAProtocolNumbers).
With `metrics.scrapers`, one more TCP rule lets those machines reach the
edge's metrics port, and nothing else on it.
"""

from __future__ import annotations

import ipaddress
import json
from collections import defaultdict

from homelab_tunnel.config import EDGE_USER, TunnelConfig

PROTOCOLS = ("tcp", "udp")


def upstream_destinations(config: TunnelConfig, protocol: str = "tcp") -> list[str]:
    """Policy destinations: each upstream machine (by user, or by address) and its ports,
    the forward-auth servers' among them."""
    ports: dict[str, set[tuple[int, int]]] = defaultdict(set)
    for site in config.sites if protocol == "tcp" else []:
        ports[_alias(site.upstream, site.upstream_is_address)].add((site.port, site.port))
    for auth in config.forward_auths if protocol == "tcp" else []:
        ports[_alias(auth.upstream, False)].add((auth.port, auth.port))
    for forward in config.ports:
        if forward.protocol == protocol:
            alias = _alias(forward.upstream, forward.upstream_is_address)
            ports[alias].add((forward.upstream_first, forward.upstream_last))
    return [
        f"{alias}:{','.join(_range(*span) for span in sorted(ports[alias]))}"
        for alias in sorted(ports)
    ]


def machine_alias(machine: str) -> str:
    """A machine in the policy: its Headscale user (it joins as the user of its name) or address."""
    try:
        ipaddress.ip_address(machine)
    except ValueError:
        return f"{machine}@"
    return machine


def _alias(upstream: str, is_address: bool) -> str:
    return upstream if is_address else f"{upstream}@"


def _range(first: int, last: int) -> str:
    return str(first) if first == last else f"{first}-{last}"


def render_policy(config: TunnelConfig) -> str:
    acls = [
        {"action": "accept", "src": [f"{EDGE_USER}@"], "proto": protocol, "dst": destinations}
        for protocol in PROTOCOLS
        if (destinations := upstream_destinations(config, protocol))
    ]
    header = (
        f"// Headscale ACL policy for the {config.name} edge, written by homelab-tunnel.\n"
        f"// The edge ({EDGE_USER}@) may open connections to exactly the site upstreams and\n"
        "// ports, the sites' forward-auth servers, and the forwarded ports, over their\n"
        "// protocol; nothing else is allowed. Each upstream machine joins as the user\n"
        "// of its own name (homelab-tunnel\n"
        "// join-command prints how).\n"
    )
    if config.metrics.scrapers:
        acls.append(
            {
                "action": "accept",
                "src": [machine_alias(scraper) for scraper in config.metrics.scrapers],
                "proto": "tcp",
                "dst": [f"{EDGE_USER}@:{config.metrics.port}"],
            }
        )
        header += (
            "// The machines in metrics.scrapers may reach the edge's Prometheus endpoint,\n"
            "// that port only, over TCP.\n"
        )
    return header + json.dumps({"acls": acls}, indent=2) + "\n"
