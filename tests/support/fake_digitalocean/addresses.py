"""Reserved IPv4 and IPv6 addresses and their assign/unassign actions.

The two families differ in ways the provider depends on: IPv4 is created
from `{"region"}` with 202 and answers its actions under
`/v2/reserved_ips/{ip}/actions/{id}`; IPv6 is created from
`{"region_slug"}` with 201 and its actions are polled at `/v2/actions/{id}`
(OpenAPI spec: reservedIPs_create, reservedIPv6_create, *Actions_post).
While assigned, `droplet` is the whole droplet object: the provider reads
`droplet.id` without a nil check when it unassigns.
"""

from __future__ import annotations

import ipaddress
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


def handle_ipv4(state: FakeAccount, request: Request) -> Answer:
    if request.parts == ("reserved_ips",) and request.method == "POST":
        region = state.region_object(request.body.get("region"))
        address = f"198.51.100.{state.number() % 250 + 2}"
        state.reserved_ips[address] = {
            "ip": address,
            "region": region,
            "droplet": None,
            "project_id": state.default_project()["id"],
            "locked": False,
        }
        return ok({"reserved_ip": state.reserved_ips[address], "links": {}}, 202)
    return _existing(state, request, state.reserved_ips, "reserved_ip")


def handle_ipv6(state: FakeAccount, request: Request) -> Answer:
    if request.parts == ("reserved_ipv6",) and request.method == "POST":
        slug = state.region_object(request.body.get("region_slug"))["slug"]
        address = f"2001:db8:ff::{state.number():x}"
        state.reserved_ipv6[address] = {
            "ip": address,
            "region_slug": slug,
            "reserved_at": NOW,
            "droplet": None,
        }
        return ok({"reserved_ipv6": state.reserved_ipv6[address]}, 201)
    return _existing(state, request, state.reserved_ipv6, "reserved_ipv6")


def _existing(
    state: FakeAccount, request: Request, table: dict[str, dict[str, Any]], key: str
) -> Answer:
    parts, method = request.parts, request.method
    address = table.get(request.item(1))
    if address is None:
        raise not_found()
    if len(parts) == 2 and method == "GET":
        shown = dict(address)
        if address["droplet"] is not None:
            shown["droplet"] = state.droplet(address["droplet"]["id"])
        return ok({key: shown})
    if len(parts) == 2 and method == "DELETE":
        if address["droplet"] is not None:
            raise unprocessable("The reserved IP is assigned to a Droplet; unassign it first.")
        del table[address["ip"]]
        return NO_CONTENT
    if parts[2:] == ("actions",) and method == "POST":
        return _act(state, table, address, request.body)
    if len(parts) == 4 and parts[2] == "actions" and method == "GET":
        return state.read_action(parts[3])
    raise not_found()


def _act(
    state: FakeAccount,
    table: dict[str, dict[str, Any]],
    address: dict[str, Any],
    body: dict[str, Any],
) -> Answer:
    slug = address["region"]["slug"] if "region" in address else address["region_slug"]
    kind = body.get("type")
    if kind == "assign":
        droplet = state.droplet(body.get("droplet_id"))
        if droplet["region"]["slug"] != slug:
            raise unprocessable("The reserved IP and the Droplet must be in the same region.")
        for other in table.values():
            if other is not address and (other["droplet"] or {}).get("id") == droplet["id"]:
                raise unprocessable("The Droplet already has a reserved IP assigned.")
        address["droplet"] = {"id": droplet["id"]}
    elif kind == "unassign":
        if address["droplet"] is None:
            raise unprocessable("The reserved IP is not assigned.")
        address["droplet"] = None
    else:
        raise unprocessable(f"fake: reserved IP action {kind!r} is not implemented")
    family = "reserved_ipv6" if "region_slug" in address else "reserved_ip"
    resource_id = int(ipaddress.ip_address(address["ip"])) if family == "reserved_ip" else 0
    action = state.start_action(f"{kind}_ip", resource_id, family, slug)
    return ok({"action": action}, 201)
