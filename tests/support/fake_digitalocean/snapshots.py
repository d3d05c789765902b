"""Volume snapshots: list and create per volume, read and delete by id.

Paths: /v2/volumes/{id}/snapshots (list, create), /v2/volumes/snapshots/{id}
(read, delete; volumeSnapshots_*_byId) and /v2/snapshots/{id} (the generic
snapshots API, same object).

Shapes from DigitalOcean's API reference: volumeSnapshots_create answers 201
with {"snapshot": {id, name, created_at, resource_id, resource_type: "volume",
min_disk_size, size_gigabytes, regions, tags}}; volumeSnapshots_list pages
{"snapshots": [...]}; volumeSnapshots_delete_byId answers 204.
"""

from __future__ import annotations

from typing import Any

from support.fake_digitalocean.account import FakeAccount
from support.fake_digitalocean.core import (
    NO_CONTENT,
    Answer,
    Request,
    not_found,
    ok,
    page,
    unprocessable,
)


def handle_volume_snapshots(state: FakeAccount, request: Request, volume: dict[str, Any]) -> Answer:
    """/v2/volumes/{id}/snapshots"""
    mine = [s for s in state.snapshots.values() if s["resource_id"] == volume["id"]]
    if request.method == "GET":
        return page(request, f"/v2/volumes/{volume['id']}/snapshots", "snapshots", mine)
    if request.method == "POST":
        name = request.body.get("name")
        if not isinstance(name, str) or not name:
            raise unprocessable("name is required")
        second = state.number()  # one second apart: their order is their age
        snapshot = {
            "id": state.uuid(),
            "name": name,
            "created_at": f"2026-11-29T12:{second // 60 % 60:02d}:{second % 60:02d}Z",
            "resource_id": volume["id"],
            "resource_type": "volume",
            "regions": [volume["region"]["slug"]],
            "min_disk_size": volume["size_gigabytes"],
            "size_gigabytes": 0.1,
            "tags": list(request.body.get("tags") or []),
        }
        state.snapshots[snapshot["id"]] = snapshot
        return ok({"snapshot": snapshot}, status=201)
    raise not_found()


def handle(state: FakeAccount, request: Request) -> Answer:
    """/v2/snapshots/{id}"""
    return handle_by_id(state, request, request.parts[1:])


def handle_by_id(state: FakeAccount, request: Request, rest: tuple[str, ...]) -> Answer:
    if len(rest) != 1:
        raise not_found()
    snapshot = state.snapshots.get(rest[0])
    if snapshot is None:
        raise not_found()
    if request.method == "GET":
        return ok({"snapshot": snapshot})
    if request.method == "DELETE":
        del state.snapshots[snapshot["id"]]
        return NO_CONTENT
    raise not_found()
