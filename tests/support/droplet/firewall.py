"""DigitalOcean's cloud firewall, as nftables rules generated from the synthesized stack.

The rules come from the `digitalocean_firewall` resource of cdk.tf.json, so
what Terraform would deploy is what the lab enforces. They run on the
internet router, on the droplet's link, as DigitalOcean runs them outside the
droplet: stateful (replies to allowed traffic pass), and whatever no rule
allows is dropped, never refused, so a closed port times out. A rule shape the
model does not know (tags, droplet or load balancer sources, a Terraform
reference) is refused, not skipped.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

TABLE = "cloud_firewall"
PROTOCOLS = ("tcp", "udp", "icmp")
_KEYS = {
    "inbound_rule": ("protocol", "port_range", "source_addresses"),
    "outbound_rule": ("protocol", "port_range", "destination_addresses"),
}


class FirewallError(ValueError):
    """The stack's firewall cannot be modelled; the message names the rule and field."""


@dataclass(frozen=True)
class Rule:
    protocol: str
    ports: tuple[int, int] | None  # None: every port (and always for ICMP)
    networks: tuple[str, ...]


@dataclass(frozen=True)
class Firewall:
    name: str
    inbound: tuple[Rule, ...]
    outbound: tuple[Rule, ...]


def from_stack(stack: dict[str, Any]) -> Firewall:
    """The one `digitalocean_firewall` of a synthesized stack."""
    found = stack.get("resource", {}).get("digitalocean_firewall", {})
    if len(found) != 1:
        raise FirewallError(f"expected one digitalocean_firewall, found {len(found)}")
    (logical, resource), *_ = found.items()
    return Firewall(
        name=str(resource.get("name", logical)),
        inbound=tuple(
            _rule(f"{logical}.inbound_rule[{n}]", rule, "inbound_rule")
            for n, rule in enumerate(resource.get("inbound_rule", []))
        ),
        outbound=tuple(
            _rule(f"{logical}.outbound_rule[{n}]", rule, "outbound_rule")
            for n, rule in enumerate(resource.get("outbound_rule", []))
        ),
    )


def _rule(where: str, rule: dict[str, Any], kind: str) -> Rule:
    protocol, port_range, addresses = _KEYS[kind]
    unknown = sorted(set(rule) - set(_KEYS[kind]))
    if unknown:
        raise FirewallError(f"{where}: cannot model {', '.join(unknown)}")
    if rule.get(protocol) not in PROTOCOLS:
        raise FirewallError(f"{where}.protocol: {rule.get(protocol)!r}, not one of {PROTOCOLS}")
    networks = tuple(_network(f"{where}.{addresses}", value) for value in rule.get(addresses, []))
    if not networks:
        raise FirewallError(f"{where}.{addresses}: empty")
    return Rule(rule[protocol], _ports(f"{where}.{port_range}", rule), networks)


def _network(where: str, value: object) -> str:
    try:
        return str(ipaddress.ip_network(str(value), strict=False))
    except ValueError:
        raise FirewallError(f"{where}: {value!r} is not an address or network") from None


def _ports(where: str, rule: dict[str, Any]) -> tuple[int, int] | None:
    value = rule.get("port_range")
    if rule["protocol"] == "icmp":
        if value is not None:
            raise FirewallError(f"{where}: ICMP has no ports")
        return None
    if value is None:
        raise FirewallError(f"{where}: required for {rule['protocol']}")
    if value in ("all", "1-65535"):
        return None
    low, _, high = str(value).partition("-")
    try:
        ports = (int(low), int(high or low))
    except ValueError:
        raise FirewallError(f"{where}: {value!r} is not a port or range") from None
    if not 1 <= ports[0] <= ports[1] <= 65535:
        raise FirewallError(f"{where}: {value!r} is not a port or range")
    return ports


def ruleset(firewall: Firewall, link: str) -> str:
    """An nftables script that (re)places the firewall on the router's `link` to the droplet."""
    lines = [
        f"table inet {TABLE}",
        f"delete table inet {TABLE}",
        f"table inet {TABLE} {{",
        "  counter inbound_dropped { }",
        "  counter outbound_dropped { }",
        "  chain forward { type filter hook forward priority filter - 10; policy accept;",
        f'    oifname "{link}" jump inbound',
        f'    iifname "{link}" jump outbound',
        "  }",
    ]
    for direction, rules, field in (
        ("inbound", firewall.inbound, "saddr"),
        ("outbound", firewall.outbound, "daddr"),
    ):
        lines += [f"  chain {direction} {{", "    ct state established,related accept"]
        lines += [f"    {match} accept" for rule in rules for match in _matches(rule, field)]
        lines += [f"    counter name {direction}_dropped drop", "  }"]
    return "\n".join([*lines, "}", ""])


def _matches(rule: Rule, field: str) -> list[str]:
    """One nftables match per address family the rule names."""
    matches = []
    for family, nfproto, icmp in (("ip", "ipv4", "icmp"), ("ip6", "ipv6", "ipv6-icmp")):
        networks = [n for n in rule.networks if ipaddress.ip_network(n).version == int(nfproto[-1])]
        if not networks:
            continue
        if any(ipaddress.ip_network(n).prefixlen == 0 for n in networks):
            where = f"meta nfproto {nfproto}"
        else:
            where = f"{family} {field} {{ {', '.join(networks)} }}"
        if rule.protocol == "icmp":
            matches.append(f"{where} meta l4proto {icmp}")
        elif rule.ports is None:
            matches.append(f"{where} meta l4proto {rule.protocol}")
        else:
            low, high = rule.ports
            ports = str(low) if low == high else f"{low}-{high}"
            matches.append(f"{where} {rule.protocol} dport {ports}")
    return matches
