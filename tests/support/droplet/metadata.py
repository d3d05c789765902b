"""The metadata service around the droplet boxes: where it listens and what it knows of each.

It runs in the internet router's namespace on 169.254.169.254:80 (the
address on the router's loopback), so a droplet reaches it through its
gateway as on DigitalOcean, from whichever address its routes pick: its own
or, once reserved-ip-egress.sh moves the default route, its anchor. The
router drops packets for it from any link but the droplet's, so no other box
can ask. metadata_server.py answers; this module writes what it answers.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from support.lab.addresses import Droplet as Addresses
from support.lab.boxes import Box
from support.lab.shell import wait_for

ADDRESS = "169.254.169.254"
SERVER = Path(__file__).resolve().with_name("metadata_server.py")


@dataclass(frozen=True)
class Facts:
    """What DigitalOcean knows about one droplet."""

    droplet_id: int
    hostname: str
    region: str
    addresses: Addresses
    mac: str
    user_data: bytes
    public_keys: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()


def _netmask(prefix: int) -> str:
    return str(ipaddress.ip_network(f"0.0.0.0/{prefix}").netmask)


def record(facts: Facts, reserved_ip: str, active_from: float | None) -> dict[str, Any]:
    """The server's record of a droplet; the reserved IP is active from `active_from`
    (seconds since the epoch), never while it is None."""
    addresses = facts.addresses
    return {
        "id": facts.droplet_id,
        "hostname": facts.hostname,
        "region": facts.region,
        "user_data_b64": base64.b64encode(facts.user_data).decode(),
        "vendor_data": "",
        "public_keys": list(facts.public_keys),
        "tags": list(facts.tags),
        "interfaces": {
            "public": [
                {
                    "mac": facts.mac,
                    "type": "public",
                    "ipv4": {
                        "ip_address": addresses.own,
                        "netmask": _netmask(addresses.own_prefix),
                        "gateway": addresses.own_gateway,
                    },
                    "anchor_ipv4": {
                        "ip_address": addresses.anchor,
                        "netmask": _netmask(addresses.anchor_prefix),
                        "gateway": addresses.anchor_gateway,
                    },
                }
            ]
        },
        "reserved_ip": {"ipv4": {"ip_address": reserved_ip, "active_from": active_from}},
    }


class MetadataService:
    """The service in the router's namespace; `link` is the droplets' veth on the router."""

    def __init__(self, router: Box, directory: Path, link: str) -> None:
        self.router = router
        self.link = link
        self.state = directory / "metadata.json"
        self.records: dict[int, dict[str, Any]] = {}
        self.addresses: dict[int, Addresses] = {}

    def start(self) -> None:
        self._save()
        self.router.ip("addr", "add", f"{ADDRESS}/32", "dev", "lo")
        self.guard(True)
        self.router.spawn("metadata", [sys.executable, SERVER, ADDRESS, "80", self.state])
        connect = f"import socket; socket.create_connection(('{ADDRESS}', 80), timeout=1)"
        probe = [sys.executable, "-c", connect]
        wait_for(
            "the metadata service",
            lambda: self.router.run(probe, check=False).returncode == 0,
            10,
            0.05,
        )

    def guard(self, on: bool) -> None:
        """Drop what reaches the address from any link but the droplet's (and the router's
        own loopback); `False` lifts it, for a test to show what it keeps out."""
        if not on:
            self.router.run(["nft", "delete", "table", "inet", "metadata"])
            return
        self.router.nft(
            "table inet metadata {\n"
            "  chain input { type filter hook input priority filter; policy accept;\n"
            f'    ip daddr {ADDRESS} iifname != {{ "lo", "{self.link}" }} counter drop\n'
            "  }\n"
            "}\n"
        )

    def register(self, facts: Facts, reserved_ip: str, active_after: float | None) -> None:
        """Answer `facts` to the droplet; its reserved IP turns active `active_after` seconds
        from now (None: not assigned to it)."""
        active_from = None if active_after is None else time.time() + active_after
        self.records[facts.droplet_id] = record(facts, reserved_ip, active_from)
        self.addresses[facts.droplet_id] = facts.addresses
        self._save()

    def assign_reserved_ip(self, droplet_id: int, active_after: float | None) -> None:
        """Switch the droplet's reserved IP on after `active_after` seconds, or off (None)."""
        ipv4 = self.records[droplet_id]["reserved_ip"]["ipv4"]
        ipv4["active_from"] = None if active_after is None else time.time() + active_after
        self._save()

    def forget(self, droplet_id: int) -> None:
        """A destroyed droplet: its addresses get no answers any more."""
        self.records.pop(droplet_id, None)
        self.addresses.pop(droplet_id, None)
        self._save()

    def _save(self) -> None:
        droplets = {}
        for droplet_id, answers in self.records.items():
            addresses = self.addresses[droplet_id]
            droplets[addresses.own] = droplets[addresses.anchor] = answers
        temporary = self.state.with_suffix(".tmp")
        temporary.write_text(json.dumps({"droplets": droplets}, indent=1))
        temporary.replace(self.state)
