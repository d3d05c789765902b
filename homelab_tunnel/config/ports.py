"""Public ports: the edge's own, those never forwarded, and what a `[[ports]]` list may hold.

One table of the ports the edge itself answers on (the firewall construct opens
exactly these, plus ICMP and SSH), so a forwarded port can never shadow one of
them: nftables' DNAT runs before any socket sees the packet, and a forwarded
UDP 41641 would silently take the tailnet's direct path away.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

# (protocol, port, why): every port the edge answers on from the internet.
# Closing UDP 41641 or 3478 silently pushes peers onto a relay.
EDGE_PORTS: tuple[tuple[str, int, str], ...] = (
    ("tcp", 80, "HTTP: ACME challenges, redirect to HTTPS, captive-portal probe"),
    ("tcp", 443, "HTTPS for the sites and Headscale"),
    ("udp", 443, "HTTP/3"),
    ("udp", 41641, "Tailscale direct WireGuard path"),
    ("udp", 3478, "STUN for the embedded DERP relay"),
)
SSH_PORT = 22

# Services a homelab runs on its LAN that are abused within hours when they face
# the internet: reflectors for DDoS amplification (DigitalOcean suspends a
# droplet that sends such floods) and protocols that hand over the machine.
NEVER_FORWARDED: tuple[tuple[str, int, str], ...] = (
    ("udp", 53, "DNS: an open resolver (Pi-hole, AdGuard Home) is used for DDoS amplification"),
    ("udp", 111, "rpcbind (NFS): a DDoS amplifier, and it maps the NFS services behind it"),
    ("tcp", 111, "rpcbind (NFS): it maps the NFS services behind it"),
    ("udp", 123, "NTP: a DDoS amplifier"),
    ("udp", 161, "SNMP: a DDoS amplifier that also reads out the device's configuration"),
    ("tcp", 139, "NetBIOS/SMB file sharing: attacked by worms, never meant for the internet"),
    ("tcp", 445, "SMB file sharing: attacked by worms, never meant for the internet"),
    ("tcp", 2375, "the Docker API without TLS: root on the homelab for anyone who connects"),
)

# DigitalOcean's limit (docs: Firewalls Limits), inbound and outbound counted together.
FIREWALL_RULE_LIMIT = 50
# The edge's own rules: its public ports, ICMP, and outbound TCP, UDP and ICMP.
EDGE_FIREWALL_RULES = len(EDGE_PORTS) + 1 + 3


@dataclass(frozen=True)
class Span:
    """A protocol and an inclusive range of ports."""

    protocol: str
    first: int
    last: int

    def meets(self, other: Span) -> bool:
        """Whether the two share a port."""
        return (
            self.protocol == other.protocol
            and self.first <= other.last
            and other.first <= self.last
        )

    def __str__(self) -> str:
        ports = str(self.first) if self.first == self.last else f"{self.first}-{self.last}"
        return f"{self.protocol} {ports}"


def _holds(span: Span, port: Span) -> str:
    """`tcp 22 is` or `tcp 20-25 includes tcp 22,`: the start of a refusal."""
    return f"{span} is" if span == port else f"{span} includes {port},"


def parse_ports(value: str) -> tuple[int, int]:
    """`"27015"` or `"27015-27020"` as (first, last); ValueError when it is neither."""
    first, dash, last = value.partition("-")
    if not first.isdigit() or (dash and not last.isdigit()) or not first.isascii():
        raise ValueError(value)
    low, high = int(first), int(last or first)
    if not 1 <= low <= high <= 65535 or (dash and low == high):
        raise ValueError(value)
    return low, high


def port_problems(spans: Sequence[Span], *, ssh_open: bool, firewall_rules: int) -> Iterable[str]:
    """One line per refused entry: the edge's own ports, the never-forwarded ones, overlaps."""
    taken = [(Span(protocol, port, port), why) for protocol, port, why in EDGE_PORTS]
    if ssh_open:
        taken.append((Span("tcp", SSH_PORT, SSH_PORT), "SSH, open to ssh_allowed_cidrs"))
    seen: list[Span] = []
    for index, span in enumerate(spans):
        where = f"ports.{index}.port"
        for edge, why in taken:
            if span.meets(edge):
                yield (
                    f"{where}: {_holds(span, edge)} the edge's own ({why}); pick another "
                    "public port (upstream_port can still be the service's own)"
                )
        for protocol, port, why in NEVER_FORWARDED:
            if span.meets(never := Span(protocol, port, port)):
                yield (
                    f"{where}: {_holds(span, never)} never forwarded to the internet: {why}; "
                    "reach it over the tailnet instead"
                )
        for other, earlier in enumerate(seen):
            if span.meets(earlier):
                verb = "repeats" if span == earlier else "overlaps"
                yield f"{where}: {span} {verb} ports.{other} ({earlier}); each public port once"
        seen.append(span)
    if firewall_rules + len(spans) > FIREWALL_RULE_LIMIT:
        yield (
            f"ports: {len(spans)} entries need {len(spans)} firewall rules beside the edge's "
            f"{firewall_rules}, over DigitalOcean's limit of {FIREWALL_RULE_LIMIT} rules per "
            'firewall; forward neighbouring ports as one range ("27015-27030")'
        )
