"""DNS zones and their records.

A new zone starts with DigitalOcean's three NS records and the SOA. Record
data that names a host (CNAME, MX, NS, SRV, CAA) is stored without its
trailing dot: the provider appends one to what it reads back for exactly
those types (except `@` and CAA `iodef`), so an API that kept the dot would
show a change on every plan. Status codes from DigitalOcean's OpenAPI spec
(domains_create 201, domains_create_record 201, domains_update_record 200,
*_delete 204).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from support.fake_digitalocean.account import FakeAccount, zone_defaults
from support.fake_digitalocean.core import (
    NO_CONTENT,
    Answer,
    Request,
    not_found,
    ok,
    page,
    unprocessable,
)

RECORD_TYPES = {"A", "AAAA", "CAA", "CNAME", "MX", "NS", "TXT", "SRV", "SOA"}
HOST_DATA = {"CNAME", "MX", "NS", "SRV", "CAA"}
CAA_TAGS = {"issue", "issuewild", "iodef"}
ZONE_NAME = re.compile(r"([a-z0-9]([a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,63}")
MIN_TTL = 30


def handle(state: FakeAccount, request: Request) -> Answer:
    parts, method = request.parts, request.method
    if parts == ("domains",) and method == "GET":
        zones = [_zone(name) for name in state.domains]
        return page(request, "/v2/domains", "domains", zones)
    if parts == ("domains",) and method == "POST":
        return _create_zone(state, request.body)
    name = request.item(1)
    records = state.domains.get(name)
    if records is None:
        raise not_found()
    if len(parts) == 2 and method == "GET":
        return ok({"domain": _zone(name)})
    if len(parts) == 2 and method == "DELETE":
        del state.domains[name]
        return NO_CONTENT
    if parts[2:] == ("records",) and method == "GET":
        kind, label = request.param("type"), request.param("name")
        matching = [
            item
            for item in records
            if kind in (None, item["type"]) and label in (None, _fqdn(item["name"], name))
        ]
        return page(request, f"/v2/domains/{name}/records", "domain_records", matching)
    if parts[2:] == ("records",) and method == "POST":
        item = {"id": 300_000_000 + state.number(), **_record_fields(name, request.body, None)}
        records.append(item)
        return ok({"domain_record": item}, 201)
    if len(parts) == 4 and parts[2] == "records":
        return _existing_record(records, name, request)
    raise not_found()


def _zone(name: str) -> dict[str, Any]:
    return {"name": name, "ttl": 1800, "zone_file": ""}


def _fqdn(label: str, zone: str) -> str:
    return zone if label == "@" else f"{label}.{zone}"


def _create_zone(state: FakeAccount, body: dict[str, Any]) -> Answer:
    name = body.get("name")
    if not isinstance(name, str) or not ZONE_NAME.fullmatch(name):
        raise unprocessable("Name is invalid.")
    if name in state.domains:
        raise unprocessable("Name already exists.")
    # Ids apart from those of records made later (300_000_000 + n).
    state.domains[name] = zone_defaults(400_000_000 + state.number() * 10)
    return ok({"domain": {"name": name, "ttl": 1800, "zone_file": None}}, 201)


def _existing_record(records: list[dict[str, Any]], zone: str, request: Request) -> Answer:
    item = next((r for r in records if str(r["id"]) == request.parts[3]), None)
    if item is None:
        raise not_found()
    if request.method == "GET":
        return ok({"domain_record": item})
    if request.method in ("PUT", "PATCH"):
        item |= _record_fields(zone, request.body, item)
        return ok({"domain_record": item})
    if request.method == "DELETE":
        records.remove(item)
        return NO_CONTENT
    raise not_found()


def _record_fields(
    zone: str, body: dict[str, Any], existing: dict[str, Any] | None
) -> dict[str, Any]:
    """A record's fields as the API stores them, or 422 naming what is wrong."""
    merged = {**(existing or {}), **{k: v for k, v in body.items() if v is not None}}
    kind, name, data = merged.get("type"), merged.get("name"), merged.get("data")
    if kind not in RECORD_TYPES:
        raise unprocessable("Type is invalid.")
    if not name or not data:
        raise unprocessable("Name and data are required.")
    name = str(name).removesuffix(f".{zone}.")
    if kind in ("A", "AAAA"):
        version = 4 if kind == "A" else 6
        try:
            valid = ipaddress.ip_address(data).version == version
        except ValueError:
            valid = False
        if not valid:
            raise unprocessable(f"Data needs to be a valid IPv{version} address.")
    tag = merged.get("tag") or None
    if kind == "CAA" and tag not in CAA_TAGS:
        raise unprocessable("Tag is invalid.")
    if kind in HOST_DATA and data != "@" and tag != "iodef":
        data = str(data).removesuffix(".")
    ttl = merged.get("ttl") or 1800
    if ttl < MIN_TTL:
        raise unprocessable(f"TTL must be at least {MIN_TTL}.")
    return {
        "type": kind,
        "name": name,
        "data": data,
        "priority": merged.get("priority") or None,
        "port": merged.get("port") or None,
        "ttl": ttl,
        "weight": merged.get("weight") or None,
        "flags": (merged.get("flags") or 0) if kind == "CAA" else None,
        "tag": tag if kind == "CAA" else None,
    }
