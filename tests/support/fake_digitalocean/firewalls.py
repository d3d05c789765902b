"""Cloud firewalls: create, read, full update (PUT), delete.

Rule shapes from DigitalOcean's OpenAPI spec (firewalls/models/firewall_rule.yml):
`ports` is one port, a range, or "0" for all, and "For ICMP rules this
parameter will always return "0""; every rule carries a `sources` or
`destinations` object, which the provider reads without a nil check.
Status codes: firewalls_create 202, firewalls_update 200, firewalls_delete 204.
"""

from __future__ import annotations

import re
from typing import Any

from support.fake_digitalocean.account import FakeAccount
from support.fake_digitalocean.core import (
    NO_CONTENT,
    NOW,
    Answer,
    Request,
    not_found,
    ok,
    unprocessable,
)

PORTS = re.compile(r"0|[1-9][0-9]{0,4}(-[1-9][0-9]{0,4})?")


def handle(state: FakeAccount, request: Request) -> Answer:
    parts, method = request.parts, request.method
    if parts == ("firewalls",) and method == "POST":
        firewall = {
            "id": state.uuid(),
            "status": "succeeded",
            "created_at": NOW,
            "pending_changes": [],
        }
        firewall |= _fields(state, request.body)
        state.firewalls[firewall["id"]] = firewall
        return ok({"firewall": firewall}, 202)
    firewall = state.firewalls.get(request.item(1))
    if firewall is None or len(parts) != 2:
        raise not_found()
    if method == "GET":
        return ok({"firewall": firewall})
    if method == "PUT":
        firewall |= _fields(state, request.body)
        return ok({"firewall": firewall})
    if method == "DELETE":
        del state.firewalls[firewall["id"]]
        return NO_CONTENT
    raise not_found()


def _fields(state: FakeAccount, body: dict[str, Any]) -> dict[str, Any]:
    if not body.get("name"):
        raise unprocessable("name is required")
    for droplet_id in body.get("droplet_ids") or []:
        if droplet_id not in state.droplets:
            raise unprocessable(f"Droplet {droplet_id} does not exist")
    return {
        "name": body["name"],
        "droplet_ids": list(body.get("droplet_ids") or []),
        "tags": list(body.get("tags") or []),
        "inbound_rules": _rules(body.get("inbound_rules"), "sources"),
        "outbound_rules": _rules(body.get("outbound_rules"), "destinations"),
    }


def _rules(rules: list[dict[str, Any]] | None, targets: str) -> list[dict[str, Any]]:
    stored = []
    for rule in rules or []:
        protocol, ports = rule.get("protocol"), rule.get("ports")
        if protocol not in ("tcp", "udp", "icmp"):
            raise unprocessable("protocol must be one of tcp, udp or icmp")
        if protocol == "icmp":
            ports = "0"
        elif not isinstance(ports, str) or not PORTS.fullmatch(ports):
            raise unprocessable(f"ports must be a port, a range or 0 for {protocol} rules")
        stored.append({"protocol": protocol, "ports": ports, targets: rule.get(targets) or {}})
    return stored
