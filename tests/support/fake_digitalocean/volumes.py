"""Block storage volumes: list by name (preflight), create, read, delete, attach/detach/resize.

Status codes from DigitalOcean's OpenAPI spec (volumes_create 201,
volumeActions_post_byId 202, volumes_delete 204). Deleting an attached
volume is refused with 409 "A volume that's attached to a Droplet cannot be
deleted. Please detach it first before deleting." (the real API's answer,
quoted in digitalocean/terraform-provider-digitalocean issue #87).
"""

from __future__ import annotations

import re
from typing import Any

from support.fake_digitalocean import snapshots
from support.fake_digitalocean.account import FakeAccount
from support.fake_digitalocean.core import (
    NO_CONTENT,
    NOW,
    Answer,
    Request,
    conflict,
    not_found,
    ok,
    page,
    unprocessable,
)

# Volume names: lowercase letters, digits and '-', starting with a letter (API reference).
NAME = re.compile(r"[a-z][a-z0-9-]{0,63}")


def handle(state: FakeAccount, request: Request) -> Answer:
    parts, method = request.parts, request.method
    if parts == ("volumes",) and method == "GET":
        name, where = request.param("name"), request.param("region")
        matching = [
            volume
            for volume in state.volumes
            if (name is None or volume["name"] == name)
            and (where is None or volume["region"]["slug"] == where)
        ]
        return page(request, "/v2/volumes", "volumes", matching)
    if parts == ("volumes",) and method == "POST":
        return _create(state, request.body)
    if parts[:2] == ("volumes", "snapshots"):
        return snapshots.handle_by_id(state, request, parts[2:])
    volume = state.volume(request.item(1))
    if len(parts) == 2 and method == "GET":
        return ok({"volume": volume})
    if len(parts) == 2 and method == "DELETE":
        if volume["droplet_ids"]:
            raise conflict(
                "A volume that's attached to a Droplet cannot be deleted. "
                "Please detach it first before deleting."
            )
        state.volumes.remove(volume)
        return NO_CONTENT
    if parts[2:] == ("snapshots",):
        return snapshots.handle_volume_snapshots(state, request, volume)
    if parts[2:] == ("actions",) and method == "POST":
        return _act(state, volume, request.body)
    if len(parts) == 4 and parts[2] == "actions" and method == "GET":
        return state.read_action(parts[3])
    raise not_found()


def _create(state: FakeAccount, body: dict[str, Any]) -> Answer:
    region = state.region_object(body.get("region"), feature="storage")
    name, size = body.get("name"), body.get("size_gigabytes")
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise unprocessable("name must be lowercase letters, digits and '-'")
    if not isinstance(size, int) or size < 1:
        raise unprocessable("size_gigabytes must be a positive integer")
    if any(v["name"] == name and v["region"]["slug"] == region["slug"] for v in state.volumes):
        raise conflict("a volume with that name already exists in this region")
    volume = {
        "id": state.uuid(),
        "region": region,
        "name": name,
        "size_gigabytes": size,
        "description": body.get("description") or "",
        "droplet_ids": [],
        "created_at": NOW,
        "filesystem_type": body.get("filesystem_type") or "",
        "filesystem_label": body.get("filesystem_label") or "",
        "tags": list(body.get("tags") or []),
    }
    state.volumes.append(volume)
    return ok({"volume": volume}, 201)


def _act(state: FakeAccount, volume: dict[str, Any], body: dict[str, Any]) -> Answer:
    kind, droplet_id = body.get("type"), body.get("droplet_id")
    if kind == "attach":
        droplet = state.droplet(droplet_id)
        if volume["droplet_ids"] or droplet["region"]["slug"] != volume["region"]["slug"]:
            raise unprocessable("The volume cannot be attached to this Droplet.")
        volume["droplet_ids"] = [droplet["id"]]
        droplet["volume_ids"].append(volume["id"])
    elif kind == "detach":
        if droplet_id not in volume["droplet_ids"]:
            raise unprocessable("The volume is not attached to this Droplet.")
        volume["droplet_ids"] = []
        if droplet_id in state.droplets:
            state.droplets[droplet_id]["volume_ids"].remove(volume["id"])
    elif kind == "resize":
        if not isinstance(body.get("size_gigabytes"), int):
            raise unprocessable("size_gigabytes is required")
        if body["size_gigabytes"] <= volume["size_gigabytes"]:
            raise unprocessable("Volumes can only be resized to a larger size.")
        volume["size_gigabytes"] = body["size_gigabytes"]
    else:
        raise unprocessable(f"fake: volume action {kind!r} is not implemented")
    action = state.start_action(f"{kind}_volume", 0, "volume", volume["region"]["slug"])
    return ok({"action": action}, 202)
