"""Forwarded ports as one nftables table: the list from ports.json and the upstreams' addresses.

For each `[[ports]]` entry, a packet that arrives on the public interface for
one of the droplet's own addresses (the reserved IP's anchor, or its own) is
DNATed to the upstream's tailnet IPv4 and leaves through tailscale0 with its
source rewritten to the edge's tailnet address (masquerade), so the reply
comes back through the tailnet and conntrack sends it out from the address
the client wrote to. The upstream sees the edge as the client: WireGuard
accepts from a peer only the peer's own tailnet addresses, so the visitor's
address cannot be kept without making the edge the homelab's exit node.
TCP handshakes into the tailnet get their MSS clamped to tailscale0's MTU,
as Tailscale's own forwarders do (util/linuxfw ClampMSSToPMTU). Anything
else from the internet towards tailscale0 is dropped: forwarding is on only
for these ports.

A port whose upstream has no address yet is not tracked (`notrack`): a
client that keeps sending to it meanwhile would otherwise keep a conntrack
entry for the edge itself alive, and NAT is decided only for an entry's
first packet, so the port would stay dead once the address is known.

Pure: no I/O; edge/port_agent.py runs it. Standard library only.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from homelab_tunnel.findings import Finding, ok, problem

TABLE = "homelab_tunnel_ports"
PUBLIC_INTERFACE = "eth0"  # a droplet's public interface
TAILNET_INTERFACE = "tailscale0"
TAILNET_V4 = ipaddress.ip_network("100.64.0.0/10")
# Stands in for an upstream whose address is not known yet when a ruleset is only checked.
PLACEHOLDER = "100.64.0.0"


@dataclass(frozen=True)
class Forward:
    """One entry of ports.json (render/ports.py writes it)."""

    protocol: str
    first: int
    last: int
    upstream: str
    upstream_host: str
    upstream_port: int

    @property
    def ports(self) -> str:
        return str(self.first) if self.first == self.last else f"{self.first}-{self.last}"

    @property
    def label(self) -> str:
        return f"{self.protocol} {self.ports}"

    @property
    def upstream_address(self) -> str | None:
        """The upstream when the config names it by tailnet address."""
        return self.upstream if _tailnet_v4(self.upstream) else None


def read_forwards(text: str) -> list[Forward]:
    """ports.json as Forwards; ValueError naming the entry and field that is not right."""
    try:
        entries = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(entries, list):
        raise ValueError("not a list of ports")
    return [_forward(index, entry) for index, entry in enumerate(entries)]


def _forward(index: int, entry: Any) -> Forward:
    where = f"entry {index}"
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: not an object")
    if entry.get("protocol") not in ("tcp", "udp"):
        raise ValueError(f"{where}: protocol must be tcp or udp")
    for key in ("upstream", "upstream_host"):
        if not isinstance(entry.get(key), str) or not entry[key]:
            raise ValueError(f"{where}: {key} must be a name")
    first, _, last = str(entry.get("port", "")).partition("-")
    port = entry.get("upstream_port")
    if not (first.isdigit() and (last or first).isdigit()) or type(port) is not int:
        raise ValueError(f"{where}: port must be N or N-M and upstream_port a number")
    forward = Forward(
        entry["protocol"], int(first), int(last or first), entry["upstream"],
        entry["upstream_host"], port,
    )  # fmt: skip
    top = forward.upstream_port + forward.last - forward.first
    if not 1 <= forward.first <= forward.last <= 65535 or not 1 <= port <= top <= 65535:
        raise ValueError(f"{where}: ports out of range 1-65535")
    return forward


def tailnet_addresses(status: Mapping[str, Any]) -> dict[str, str]:
    """MagicDNS name -> tailnet IPv4 of every peer in a LocalAPI (or `tailscale status`) status."""
    found: dict[str, str] = {}
    peers = status.get("Peer") or {}
    for peer in peers.values() if isinstance(peers, dict) else []:
        if not isinstance(peer, dict):
            continue
        name = str(peer.get("DNSName") or "").lower().removesuffix(".")
        address = next((ip for ip in peer.get("TailscaleIPs") or [] if _tailnet_v4(ip)), None)
        if name and address:
            found[name] = address
    return found


def _tailnet_v4(value: object) -> bool:
    try:
        address = ipaddress.ip_address(str(value))
    except ValueError:
        return False
    return address.version == 4 and address in TAILNET_V4


Target = tuple[Forward, str | None]
"""A forward and its upstream's tailnet address (None: not known yet)."""


def targets(forwards: Sequence[Forward], addresses: Mapping[str, str]) -> list[Target]:
    return [
        (forward, forward.upstream_address or addresses.get(forward.upstream_host))
        for forward in forwards
    ]


def ruleset(chosen: Sequence[Target]) -> str:
    """An nft script that replaces the table in one transaction (or removes it: no forwards).

    Forwards without an address get no DNAT, and are not tracked (see above):
    their packets meet no socket and are answered as a closed port is.
    """
    script = f"table ip {TABLE}\ndelete table ip {TABLE}\n"
    if not chosen:
        return script
    public, tailnet = f'iifname "{PUBLIC_INTERFACE}"', f'oifname "{TAILNET_INTERFACE}"'
    local = f"{public} fib daddr type local"
    rules = [_dnat(forward, address) for forward, address in chosen if address]
    idle = [forward for forward, address in chosen if not address]
    return script + "\n".join(
        [
            f"table ip {TABLE} {{",
            "  chain untracked {",
            "    type filter hook prerouting priority raw; policy accept;",
            *(f"    {local} {forward.protocol} dport {forward.ports} notrack" for forward in idle),
            "  }",
            "  chain prerouting {",
            "    type nat hook prerouting priority dstnat; policy accept;",
            *(f"    {local} {rule}" for rule in rules),
            "  }",
            "  chain postrouting {",
            "    type nat hook postrouting priority srcnat; policy accept;",
            f"    {tailnet} ct status dnat masquerade",
            "  }",
            "  chain forward {",
            "    type filter hook forward priority mangle; policy accept;",
            f"    {public} {tailnet} ct status dnat tcp flags syn / syn,rst "
            "tcp option maxseg size set rt mtu",
            f"    {public} {tailnet} ct status dnat accept",
            f"    {public} {tailnet} counter drop",
            "  }",
            "}",
            "",
        ]
    )


def _dnat(forward: Forward, address: str) -> str:
    match = f"{forward.protocol} dport {forward.ports}"
    if forward.upstream_port == forward.first:
        return f"{match} dnat to {address}"  # the same port(s) on the upstream
    if forward.first == forward.last:
        return f"{match} dnat to {address}:{forward.upstream_port}"
    offset = forward.upstream_port - forward.first
    ports = range(forward.first, forward.last + 1)
    pairs = ", ".join(f"{port} : {port + offset}" for port in ports)
    return f"{match} dnat to {address} : {forward.protocol} dport map {{ {pairs} }}"


# ---------------------------------------------------------------------------
# The port agent's status (what is forwarded where), and findings from it
# ---------------------------------------------------------------------------


def status_document(chosen: Sequence[Target], *, at: str, error: str | None) -> dict[str, Any]:
    return {
        "at": at,
        "error": error,
        "ports": [
            {
                "protocol": forward.protocol,
                "port": forward.ports,
                "upstream": forward.upstream,
                "upstream_host": forward.upstream_host,
                "upstream_port": forward.upstream_port,
                "address": address,
            }
            for forward, address in chosen
        ],
    }


def known_addresses(status: Mapping[str, Any]) -> dict[str, str]:
    """upstream host -> address, as a status document last recorded them."""
    entries = status.get("ports") if isinstance(status.get("ports"), list) else []
    return {
        str(entry["upstream_host"]): str(entry["address"])
        for entry in entries or []
        if isinstance(entry, dict) and entry.get("address") and entry.get("upstream_host")
    }


def port_findings(forwards: Sequence[Forward], status: Mapping[str, Any] | None) -> list[Finding]:
    """Each configured port: forwarded to an address, or why not. None: no status yet."""
    if not forwards:
        return []
    if status is None:
        return [
            problem(
                "ports",
                f"{len(forwards)} configured, but the port agent has recorded nothing "
                "(systemctl status homelab-tunnel-ports)",
            )
        ]
    found: list[Finding] = []
    if status.get("error"):
        found.append(
            problem("ports", f"the forwarding table could not be applied: {status['error']}")
        )
    recorded = {
        (entry.get("protocol"), entry.get("port")): entry
        for entry in status.get("ports") or []
        if isinstance(entry, dict)
    }
    for forward in forwards:
        entry = recorded.get((forward.protocol, forward.ports)) or {}
        found.extend(_finding(forward, entry))
    return found


def _finding(forward: Forward, entry: Mapping[str, Any]) -> Iterable[Finding]:
    subject = f"port {forward.label}"
    where = f"{forward.upstream}:{forward.upstream_port}"
    if entry.get("upstream") != forward.upstream or entry.get("upstream_port") != (
        forward.upstream_port
    ):
        yield problem(subject, f"configured for {where}, not applied yet by the port agent")
    elif not entry.get("address"):
        yield problem(
            subject,
            f"not forwarded: {forward.upstream_host} has no tailnet address (not joined, or "
            "renamed?); it is forwarded within seconds of joining",
        )
    else:
        yield ok(subject, f"forwarded to {where} ({entry['address']})")
