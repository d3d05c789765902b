"""The lab's wires: the internet router, its veths, DigitalOcean's reserved-IP NAT, a home NAT.

The router ("inet") forwards between every box. Its `lab` table holds the
leak guard: any packet for an address outside the documentation ranges is
counted and dropped, and teardown asserts the count is 0. Its `droplet` table
is DigitalOcean's reserved IP: DNAT to the current droplet's anchor address,
SNAT of the anchor back to the reserved IP, and the anchor unreachable
directly (as DigitalOcean's 10.x anchor is). The table is swapped when a
replacement droplet takes the reserved IP over. The cloud firewall, generated
from a synthesized stack (support/droplet/firewall.py), sits on the droplet's
link when a scenario puts it there.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence

from support.droplet.firewall import TABLE as FIREWALL_TABLE
from support.droplet.firewall import Firewall, ruleset
from support.lab.addresses import LAB_NETWORKS, RESERVED_IP, Droplet, Host
from support.lab.boxes import Box
from support.lab.processes import RunState

EDGE_LINK = "edge0"


class Internet:
    """The router namespace and everything attached to it."""

    def __init__(self, state: RunState) -> None:
        self.router = Box(state, "inet")

    def create(self) -> None:
        self.router.create()
        self.router.sysctl("net.ipv4.ip_forward", "1")
        nets = ", ".join(LAB_NETWORKS)
        self.router.nft(
            "table ip lab {\n"
            "  counter leaked { }\n"
            "  chain forward { type filter hook forward priority filter; policy accept;\n"
            f"    ip daddr != {{ {nets} }} counter name leaked drop\n"
            "  }\n"
            "}\n"
        )

    def attach(self, box: Box, host: Host, link: str) -> None:
        """A veth from the router (`link`) to the box's eth0, the box's default route via it."""
        self._veth(box, link)
        self.router.ip("addr", "add", f"{host.gateway}/{host.prefix}", "dev", link)
        box.ip("addr", "add", f"{host.address}/{host.prefix}", "dev", "eth0")
        box.ip("route", "add", "default", "via", host.gateway)

    def attach_droplet(self, box: Box, droplet: Droplet) -> None:
        """The droplet's eth0: own address (primary, default route) and the anchor beside it."""
        self._veth(box, EDGE_LINK)
        for gateway, prefix in (
            (droplet.own_gateway, droplet.own_prefix),
            (droplet.anchor_gateway, droplet.anchor_prefix),
        ):
            self.router.ip("addr", "replace", f"{gateway}/{prefix}", "dev", EDGE_LINK)
        box.ip("addr", "add", f"{droplet.own}/{droplet.own_prefix}", "dev", "eth0")
        box.ip("addr", "add", f"{droplet.anchor}/{droplet.anchor_prefix}", "dev", "eth0")
        box.ip("route", "add", "default", "via", droplet.own_gateway)
        self.point_reserved_ip_at(droplet)

    def detach(self, link: str) -> None:
        """Delete a veth now: a deleted namespace frees its end only eventually."""
        self.router.run(["ip", "link", "del", link], check=False)

    def point_reserved_ip_at(self, droplet: Droplet) -> None:
        """Assign the reserved IP to `droplet`; DigitalOcean's 1:1 NAT keeps no old flows."""
        self.router.nft(
            "table ip droplet\n"
            "delete table ip droplet\n"
            "table ip droplet {\n"
            "  chain prerouting { type nat hook prerouting priority dstnat;\n"
            f"    ip daddr {RESERVED_IP} counter dnat to {droplet.anchor}\n"
            "  }\n"
            "  chain postrouting { type nat hook postrouting priority srcnat;\n"
            f"    ip saddr {droplet.anchor} counter snat to {RESERVED_IP}\n"
            "  }\n"
            "  chain forward { type filter hook forward priority filter - 5; policy accept;\n"
            f"    ip daddr {droplet.anchor_network} ct status & (snat | dnat) == 0 counter drop\n"
            "  }\n"
            "}\n"
        )
        self.router.run(["conntrack", "-D", "-d", RESERVED_IP], check=False)

    def apply_firewall(self, firewall: Firewall) -> None:
        """DigitalOcean's cloud firewall on the droplet's link, as the stack declares it."""
        self.router.nft(ruleset(firewall, EDGE_LINK))

    def remove_firewall(self) -> None:
        self.router.run(["nft", "delete", "table", "inet", FIREWALL_TABLE], check=False)

    def firewall_drops(self, direction: str) -> int:
        """Packets the firewall dropped so far, "inbound" or "outbound"."""
        return self._counter("inet", FIREWALL_TABLE, f"{direction}_dropped")

    def leaked_packets(self) -> int:
        """Packets the leak guard dropped: anything addressed outside the lab."""
        return self._counter("ip", "lab", "leaked")

    def _counter(self, family: str, table: str, name: str) -> int:
        listing = self.router.run(["nft", "-j", "list", "counter", family, table, name]).stdout
        for item in json.loads(listing)["nftables"]:
            if "counter" in item:
                return int(item["counter"]["packets"])
        raise AssertionError(f"no counter {name} in {listing}")

    @contextlib.contextmanager
    def udp_blocked(self, address: str, others: Sequence[str]) -> Iterator[None]:
        """Drop UDP both ways between one address and others; always lifted on exit."""
        peers = ", ".join(others)
        self.router.nft(
            "table ip block {\n"
            "  chain forward { type filter hook forward priority filter - 10; policy accept;\n"
            f"    ip saddr {address} ip daddr {{ {peers} }} meta l4proto udp counter drop\n"
            f"    ip daddr {address} ip saddr {{ {peers} }} meta l4proto udp counter drop\n"
            "  }\n"
            "}\n"
        )
        try:
            yield
        finally:
            self.router.nft("delete table ip block\n")

    @contextlib.contextmanager
    def unreachable(self, address: str) -> Iterator[None]:
        """`address` down, as a service that is out: every TCP connection to it refused (a
        reset), its other traffic dropped; always lifted on exit."""
        self.router.nft(
            "table ip down {\n"
            "  chain forward { type filter hook forward priority filter - 10; policy accept;\n"
            f"    ip daddr {address} meta l4proto tcp counter reject with tcp reset\n"
            f"    ip daddr {address} counter drop\n"
            "  }\n"
            "}\n"
        )
        try:
            yield
        finally:
            self.router.nft("delete table ip down\n")

    def _veth(self, box: Box, link: str) -> None:
        self.router.ip(
            "link", "add", link, "type", "veth", "peer", "name", "eth0", "netns", box.netns
        )
        self.router.ip("link", "set", link, "up")
        box.ip("link", "set", "eth0", "up")


def home_network(internet: Internet, router: Box, home: Box, wan: Host, lan: Host) -> None:
    """A home router on the internet masquerading a LAN with one machine on it."""
    internet.attach(router, wan, "home0")
    router.sysctl("net.ipv4.ip_forward", "1")
    router.ip("link", "add", "lan0", "type", "veth", "peer", "name", "eth0", "netns", home.netns)
    router.ip("link", "set", "lan0", "up")
    router.ip("addr", "add", f"{lan.gateway}/{lan.prefix}", "dev", "lan0")
    home.ip("link", "set", "eth0", "up")
    home.ip("addr", "add", f"{lan.address}/{lan.prefix}", "dev", "eth0")
    home.ip("route", "add", "default", "via", lan.gateway)
    router.nft(
        "table ip nat {\n"
        "  chain postrouting { type nat hook postrouting priority srcnat;\n"
        '    oifname "eth0" counter masquerade;\n'
        "  }\n"
        "}\n"
    )
