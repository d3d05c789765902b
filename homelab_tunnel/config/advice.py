"""Warnings about a valid config: it deploys, but a careful user wants to know.

Validation (model.py) refuses what cannot work; this module names what works
and is risky, as findings `check` and `synth` print without failing.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from homelab_tunnel.config.model import TunnelConfig
from homelab_tunnel.findings import Finding, warning


def config_warnings(config: TunnelConfig) -> list[Finding]:
    cidrs = config.ssh_allowed_cidrs
    return [*_ssh_open_to_the_world(cidrs), *_covered_by_another("ssh_allowed_cidrs", cidrs)]


def _covered_by_another(field: str, cidrs: list[str]) -> Iterable[Finding]:
    """A network inside another listed one adds nothing: often a typo in the wider one.

    Exact repeats are refused by validation; this names the quieter case,
    `203.0.113.0/24` next to `203.0.113.7/32`.
    """
    networks = [ipaddress.ip_network(cidr) for cidr in cidrs]
    for index, network in enumerate(networks):
        wider = next(
            (
                other_index
                for other_index, other in enumerate(networks)
                if other_index != index
                and other.version == network.version
                and other != network
                and network.subnet_of(other)  # type: ignore[arg-type]
            ),
            None,
        )
        if wider is not None:
            yield warning(
                f"{field}.{index}",
                f"{cidrs[index]} is inside {field}.{wider} ({cidrs[wider]}), which already "
                "allows it; drop one, or fix the address if the wider one is a typo",
            )


def _ssh_open_to_the_world(cidrs: list[str]) -> Iterable[Finding]:
    """SSH allowed from half or more of an address family: `0.0.0.0/0`, `::/0` and splits of them.

    Half, not all: `0.0.0.0/1` plus `128.0.0.0/1` is the whole internet too,
    and no single person's addresses come near half of it.
    """
    networks = [ipaddress.ip_network(cidr) for cidr in cidrs]
    v4 = [n for n in networks if isinstance(n, ipaddress.IPv4Network)]
    v6 = [n for n in networks if isinstance(n, ipaddress.IPv6Network)]
    families = (
        ("IPv4", [n.with_prefixlen for n in v4], _covered(ipaddress.collapse_addresses(v4)), 32),
        ("IPv6", [n.with_prefixlen for n in v6], _covered(ipaddress.collapse_addresses(v6)), 128),
    )
    for family, names, covered, bits in families:
        space = 2**bits
        if not names or covered * 2 < space:
            continue
        share = "the whole" if covered == space else "half or more of the"
        yield warning(
            "ssh_allowed_cidrs",
            f"{', '.join(names)} opens SSH (TCP 22) to {share} {family} internet; list only the "
            "addresses you connect from (e.g. 203.0.113.7/32), or leave it empty and use "
            "the DigitalOcean console",
        )


def _covered(networks: Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> int:
    return sum(network.num_addresses for network in networks)
