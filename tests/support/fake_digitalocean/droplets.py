"""Droplets: create (volumes attached in the same request), read, delete, and actions.

The provider (terraform-provider-digitalocean 2.71.0, godo 1.168.0) creates
with `POST /v2/droplets`, then polls `GET /v2/droplets/{id}` until `status`
is "active"; it reads `region`, `size`, `networks` and `image` without nil
checks, and `ipv6`/`monitoring`/`backups` back from `features` (so a fake
that forgot a feature would make every refresh plan a replacement). Status
codes from DigitalOcean's OpenAPI spec (droplets_create 202,
dropletActions_post 201, droplets_destroy 204).
"""

from __future__ import annotations

import re
from typing import Any

from support.fake_digitalocean.account import SIZES, FakeAccount
from support.fake_digitalocean.core import (
    NO_CONTENT,
    NOW,
    Answer,
    Request,
    not_found,
    ok,
    unprocessable,
)

# user_data is limited to 64 KiB (DigitalOcean's droplet metadata documentation).
USER_DATA_LIMIT = 64 * 1024
HOSTNAME = re.compile(r"[a-zA-Z0-9.-]{1,255}")


def handle(state: FakeAccount, request: Request) -> Answer:
    parts, method = request.parts, request.method
    if parts == ("droplets",) and method == "POST":
        return _create(state, request.body)
    droplet = state.droplet(request.item(1))
    if len(parts) == 2 and method == "GET":
        return ok({"droplet": droplet})
    if len(parts) == 2 and method == "DELETE":
        _delete(state, droplet["id"])
        return NO_CONTENT
    if parts[2:] == ("actions",) and method == "POST":
        return _act(state, droplet, request.body)
    if len(parts) == 4 and parts[2] == "actions" and method == "GET":
        return state.read_action(parts[3])
    raise not_found()


def _check_create(state: FakeAccount, body: dict[str, Any]) -> list[str]:
    """The request's problems as the API words them; returns the volume ids to attach."""
    for key in ("name", "region", "size", "image"):
        if not body.get(key):
            raise unprocessable(f"{key} is required")
    if not HOSTNAME.fullmatch(body["name"]):
        raise unprocessable("Only valid hostname characters are allowed. (a-z, A-Z, 0-9, . and -)")
    region = state.region_object(body["region"])
    if body["size"] not in region["sizes"] or body["size"] not in SIZES:
        raise unprocessable("You specified an invalid size for Droplet creation.")
    known = {key["fingerprint"] for key in state.ssh_keys} | {key["id"] for key in state.ssh_keys}
    if any(key not in known for key in body.get("ssh_keys") or []):
        raise unprocessable("You specified invalid ssh key ids for Droplet creation.")
    if len((body.get("user_data") or "").encode()) > USER_DATA_LIMIT:
        raise unprocessable("user_data is limited to 64 KiB.")
    volume_ids = [v if isinstance(v, str) else v.get("id") for v in body.get("volumes") or []]
    for volume_id in volume_ids:
        volume = next((v for v in state.volumes if v["id"] == volume_id), None)
        if volume is None or volume["region"]["slug"] != body["region"] or volume["droplet_ids"]:
            raise unprocessable(f"Volume {volume_id} is not available in {body['region']}.")
    return volume_ids


def _create(state: FakeAccount, body: dict[str, Any]) -> Answer:
    volume_ids = _check_create(state, body)
    droplet_id = 500_000_000 + state.number()
    octet = droplet_id % 250 + 2
    features = ["private_networking"]
    features += [flag for flag in ("backups", "ipv6", "monitoring") if body.get(flag)]
    droplet: dict[str, Any] = {
        "id": droplet_id,
        "name": body["name"],
        "locked": False,
        "status": "new",
        "kernel": None,
        "created_at": NOW,
        "features": features,
        "backup_ids": [],
        "snapshot_ids": [],
        "next_backup_window": None,
        "image": _image(body["image"]),
        "volume_ids": list(volume_ids),
        "networks": {
            "v4": [
                _network(f"203.0.113.{octet}", "255.255.255.0", "203.0.113.1", "public"),
                _network(f"10.114.0.{octet}", "255.255.240.0", "10.114.0.1", "private"),
            ],
            "v6": [_ipv6(droplet_id)] if body.get("ipv6") else [],
        },
        "region": state.region_object(body["region"]),
        "tags": list(body.get("tags") or []),
        "vpc_uuid": "5a4981aa-0000-4000-8000-0000000000" + f"{octet:02x}",
    }
    _set_size(droplet, body["size"], resize_disk=True)
    state.droplets[droplet_id] = droplet
    for volume in state.volumes:
        if volume["id"] in volume_ids:
            volume["droplet_ids"] = [droplet_id]
    action = state.start_action("create", droplet_id, "droplet", body["region"])
    answer = ok(
        {
            "droplet": droplet,
            "links": {
                "actions": [
                    {
                        "id": action["id"],
                        "rel": "create",
                        "href": f"https://api.digitalocean.com/v2/actions/{action['id']}",
                    }
                ]
            },
        },
        202,
    )
    droplet["status"] = "active"  # booted by the time anyone asks again
    return answer


def _image(slug: str) -> dict[str, Any]:
    return {
        "id": 171_000_001,
        "slug": slug,
        "name": "24.04 (LTS) x64",
        "distribution": "Ubuntu",
        "public": True,
        "regions": [],
        "min_disk_size": 7,
        "type": "base",
    }


def _network(address: str, netmask: str, gateway: str, kind: str) -> dict[str, Any]:
    return {"ip_address": address, "netmask": netmask, "gateway": gateway, "type": kind}


def _ipv6(droplet_id: int) -> dict[str, Any]:
    return {
        "ip_address": f"2001:db8:0:1::{droplet_id % 65536:x}",
        "netmask": 64,
        "gateway": "2001:db8:0:1::1",
        "type": "public",
    }


def _set_size(droplet: dict[str, Any], slug: str, *, resize_disk: bool) -> None:
    memory, vcpus, disk, monthly = SIZES[slug]
    droplet["size"] = {
        "slug": slug,
        "memory": memory,
        "vcpus": vcpus,
        "disk": disk,
        "transfer": 1.0,
        "price_monthly": monthly,
        "price_hourly": round(monthly / 672, 5),
        "regions": [droplet["region"]["slug"]],
        "available": True,
    }
    droplet.update(size_slug=slug, memory=memory, vcpus=vcpus)
    if resize_disk or "disk" not in droplet:
        droplet["disk"] = disk


def _delete(state: FakeAccount, droplet_id: int) -> None:
    """Gone, as the platform does it: volumes detached, addresses and firewalls let go."""
    del state.droplets[droplet_id]
    for volume in state.volumes:
        volume["droplet_ids"] = [d for d in volume["droplet_ids"] if d != droplet_id]
    for address in [*state.reserved_ips.values(), *state.reserved_ipv6.values()]:
        if address["droplet"] and address["droplet"]["id"] == droplet_id:
            address["droplet"] = None
    for firewall in state.firewalls.values():
        firewall["droplet_ids"] = [d for d in firewall["droplet_ids"] if d != droplet_id]


def _act(state: FakeAccount, droplet: dict[str, Any], body: dict[str, Any]) -> Answer:
    """The droplet actions the provider sends: power, resize, rename, IPv6 on."""
    kind = body.get("type")
    if kind in ("power_off", "shutdown"):
        droplet["status"] = "off"
    elif kind == "power_on":
        droplet["status"] = "active"
    elif kind == "resize":
        _resize(droplet, body)
    elif kind == "rename":
        if not HOSTNAME.fullmatch(str(body.get("name"))):
            raise unprocessable("Only valid hostname characters are allowed.")
        droplet["name"] = body["name"]
    elif kind == "enable_ipv6":
        if "ipv6" not in droplet["features"]:
            droplet["features"].append("ipv6")
            droplet["networks"]["v6"].append(_ipv6(droplet["id"]))
    else:
        raise unprocessable(f"fake: droplet action {kind!r} is not implemented")
    action = state.start_action(str(kind), droplet["id"], "droplet", droplet["region"]["slug"])
    return ok({"action": action}, 201)


def _resize(droplet: dict[str, Any], body: dict[str, Any]) -> None:
    """Only while off; a disk resize (the provider's default) can never be undone."""
    if droplet["status"] != "off":
        raise unprocessable("Droplet must be powered off to resize.")
    slug = body.get("size")
    if slug not in SIZES or slug not in droplet["region"]["sizes"]:
        raise unprocessable("You specified an invalid size.")
    if SIZES[slug][2] < droplet["disk"]:
        raise unprocessable("This size is not available because it has a smaller disk.")
    _set_size(droplet, slug, resize_disk=bool(body.get("disk")))
