"""What a firewall change opens: inbound rules compared before and after, source by source.

A DigitalOcean firewall drops everything not allowed, so the only ways a plan
exposes the droplet are: the firewall goes (deleted, replaced, the droplet
taken out of it) or an inbound rule lets more in (a new port, a wider range,
a wider source). A rule is judged against the old rules of its protocol whose
range holds all of its own: narrowing, reordering or outbound edits expose
nothing.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

SSH_PORT = 22
# Sources other than addresses: droplets, tags, load balancers, Kubernetes clusters.
OTHER_SOURCES = (
    "source_droplet_ids",
    "source_tags",
    "source_load_balancer_uids",
    "source_kubernetes_ids",
)
Key = tuple[str, str]  # (protocol, port range)


def widened_inbound(before: Any, after: Any) -> list[str]:
    """One description per inbound rule that lets in more after than before."""
    old = _by_port(before)
    found: list[str] = []
    for key, sources in _by_port(after).items():
        port = _describe(key)
        holding = [
            old_sources
            for (protocol, ports), old_sources in old.items()
            if protocol == key[0] and _holds(ports, key[1])
        ]
        if not holding:
            found.append(f"{port} newly open to {_list(sources)}")
            continue
        added = [
            source
            for source in sources
            if not any(_covered(source, old_sources) for old_sources in holding)
        ]
        if added:
            found.append(f"{port} now also open to {_list(added)}")
    return found


def opens_ssh(descriptions: Iterable[str]) -> bool:
    return any("(SSH)" in text for text in descriptions)


def inbound_unknown(unknown: Mapping[str, Any]) -> bool:
    """Whether Terraform knows the new inbound rules only after apply."""
    return has_true(unknown.get("inbound_rule"))


def _by_port(rules: Any) -> dict[Key, list[str]]:
    found: dict[Key, list[str]] = {}
    for rule in rules if isinstance(rules, list) else []:
        if not isinstance(rule, dict):
            continue
        key = (str(rule.get("protocol") or "").lower(), str(rule.get("port_range") or ""))
        sources = found.setdefault(key, [])
        for field in ("source_addresses", *OTHER_SOURCES):
            values = rule.get(field) or []
            prefix = "" if field == "source_addresses" else f"{field.removeprefix('source_')}:"
            sources += [f"{prefix}{value}" for value in values if isinstance(value, str | int)]
    return found


def _covered(source: str, old: Sequence[str]) -> bool:
    """A source is not new when an old one is the same or contains it (addresses)."""
    if source in old:
        return True
    try:
        network = ipaddress.ip_network(source, strict=False)
    except ValueError:
        return False
    for candidate in old:
        try:
            wider = ipaddress.ip_network(candidate, strict=False)
        except ValueError:
            continue
        if network.version == wider.version and network.subnet_of(wider):  # type: ignore[arg-type]
            return True
    return False


def _describe(key: Key) -> str:
    protocol, ports = key
    if protocol == "icmp":
        return "ICMP"
    label = f"{protocol.upper()} {ports or 'all ports'}"
    if protocol == "tcp" and _includes(ports, SSH_PORT):
        label += " (SSH)"
    return label


def _includes(ports: str, port: int) -> bool:
    span = _span(ports)
    return span is None or span[0] <= port <= span[1]  # unreadable: assume the worst


def _holds(wider: str, ports: str) -> bool:
    """Whether the range `wider` holds every port of `ports` (an unreadable one holds nothing)."""
    outer, inner = _span(wider), _span(ports)
    if outer is None or inner is None:
        return wider == ports
    return outer[0] <= inner[0] and inner[1] <= outer[1]


def _span(ports: str) -> tuple[int, int] | None:
    """Every port for `""` and `"all"` (and ICMP), `"N"` or `"N-M"`; None when unreadable."""
    if ports in ("", "all"):
        return (1, 65535)
    low, _, high = ports.partition("-")
    try:
        return int(low), int(high or low)
    except ValueError:
        return None


def _list(sources: Sequence[str]) -> str:
    if not sources:
        return "no source yet"
    shown = ", ".join(sources[:4])
    return shown + (f" and {len(sources) - 4} more" if len(sources) > 4 else "")


def has_true(node: Any) -> bool:
    """Whether any leaf of an after_unknown tree is true (known only after apply)."""
    if node is True:
        return True
    if isinstance(node, dict):
        return any(has_true(value) for value in node.values())
    if isinstance(node, list):
        return any(has_true(item) for item in node)
    return False
