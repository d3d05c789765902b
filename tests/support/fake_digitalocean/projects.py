"""Projects and the resources assigned to them.

An object belongs to one project at a time: assigning it moves it. The
provider un-assigns by moving URNs to the default project, and after a
droplet replacement that includes the deleted droplet's URN; the spec's
per-resource `status` (projects/models/resource.yml: ok, not_found,
assigned, ...) suggests the API reports such a URN as `not_found` rather than
failing the request, and so does the fake. A project with resources left
cannot be deleted: 412 (projects_delete).
"""

from __future__ import annotations

from typing import Any

from support.fake_digitalocean.account import FakeAccount
from support.fake_digitalocean.core import (
    NO_CONTENT,
    NOW,
    Answer,
    ApiError,
    Request,
    conflict,
    not_found,
    ok,
    page,
    unprocessable,
)

ENVIRONMENTS = ("Development", "Staging", "Production")
_EDITABLE = ("name", "description", "purpose", "environment", "is_default")
SELF_PATHS = {
    "droplet": "droplets",
    "volume": "volumes",
    "reservedip": "reserved_ips",
    "floatingip": "floating_ips",
    "reservedipv6": "reserved_ipv6",
    "domain": "domains",
}


def handle(state: FakeAccount, request: Request) -> Answer:
    parts, method = request.parts, request.method
    if parts == ("projects",) and method == "GET":
        return page(request, "/v2/projects", "projects", list(state.projects.values()))
    if parts == ("projects",) and method == "POST":
        return _create(state, request.body)
    ident = request.item(1)
    project = state.default_project() if ident == "default" else state.projects.get(ident)
    if project is None:
        raise not_found()
    if len(parts) == 2 and method == "GET":
        return ok({"project": project})
    if len(parts) == 2 and method in ("PUT", "PATCH"):
        _check(state, request.body, project)
        project |= {k: v for k, v in request.body.items() if k in _EDITABLE and v is not None}
        project["updated_at"] = NOW
        return ok({"project": project})
    if len(parts) == 2 and method == "DELETE":
        if any(state.urn_exists(urn) for urn in state.project_resources.get(project["id"], [])):
            raise ApiError(412, "precondition_failed", "cannot delete a project with resources")
        del state.projects[project["id"]]
        state.project_resources.pop(project["id"], None)
        return NO_CONTENT
    if parts[2:] == ("resources",) and method == "GET":
        urns = [u for u in state.project_resources.get(project["id"], []) if state.urn_exists(u)]
        items = [_resource(urn, "ok") for urn in urns]
        return page(request, f"/v2/projects/{project['id']}/resources", "resources", items)
    if parts[2:] == ("resources",) and method == "POST":
        return _assign(state, project["id"], request.body.get("resources") or [])
    raise not_found()


def _check(state: FakeAccount, body: dict[str, Any], project: dict[str, Any] | None) -> None:
    environment = body.get("environment")
    if environment and environment not in ENVIRONMENTS:
        raise unprocessable(f"environment must be one of {', '.join(ENVIRONMENTS)}")
    name = body.get("name")
    if name and any(p["name"] == name and p is not project for p in state.projects.values()):
        raise conflict("a project with this name already exists")


def _create(state: FakeAccount, body: dict[str, Any]) -> Answer:
    if not body.get("name") or not body.get("purpose"):
        raise unprocessable("name and purpose are required")
    _check(state, body, None)
    project = {
        "id": state.uuid(),
        "owner_uuid": state.account["uuid"],
        "owner_id": 2,
        "name": body["name"],
        "description": body.get("description") or "",
        "purpose": body["purpose"],
        "environment": body.get("environment") or "",
        "is_default": False,
        "created_at": NOW,
        "updated_at": NOW,
    }
    state.projects[project["id"]] = project
    return ok({"project": project}, 201)


def _assign(state: FakeAccount, project_id: str, urns: list[str]) -> Answer:
    items = []
    for urn in urns:
        if not state.urn_exists(urn):
            items.append(_resource(urn, "not_found"))
            continue
        for assigned in state.project_resources.values():
            if urn in assigned:
                assigned.remove(urn)
        state.project_resources.setdefault(project_id, []).append(urn)
        items.append(_resource(urn, "assigned"))
    return ok({"resources": items, "links": {}, "meta": {"total": len(items)}})


def _resource(urn: str, status: str) -> dict[str, Any]:
    kind, _, ident = urn.removeprefix("do:").partition(":")
    path = SELF_PATHS.get(kind, kind)
    return {
        "urn": urn,
        "assigned_at": NOW,
        "links": {"self": f"https://api.digitalocean.com/v2/{path}/{ident}"},
        "status": status,
    }
