"""Each forwarded port as one plain document: what the edge forwards and plan-summary compares.

The edge's port agent (edge/ports.py) reads this list as `ports.json` and
turns it into an nftables table once it knows each upstream's tailnet
address; the config object carries the same list as data beside it, as it
does the sites.
"""

from __future__ import annotations

import json
from typing import Any

from homelab_tunnel.config import PortForward, TunnelConfig


def port_document(config: TunnelConfig, forward: PortForward) -> dict[str, Any]:
    return {
        "protocol": forward.protocol,
        "port": forward.port,
        "upstream": forward.upstream,
        "upstream_host": config.upstream_host(forward),
        "upstream_port": forward.upstream_first,
    }


def port_documents(config: TunnelConfig) -> list[dict[str, Any]]:
    return [port_document(config, forward) for forward in config.ports]


def render_ports(config: TunnelConfig) -> str:
    """/etc/homelab-tunnel/ports.json: the list, one port a line so a plan shows each."""
    lines = [json.dumps(document, sort_keys=True) for document in port_documents(config)]
    return "[\n" + ",\n".join(lines) + "\n]\n" if lines else "[]\n"
