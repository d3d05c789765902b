"""Spaces access keys: create, list, read, update (PUT and PATCH), delete.

Shapes from godo's spaces_keys.go (vendored by the provider at v2.71.0) and
DigitalOcean's OpenAPI spec as pydo carries it: the envelope is `{"key": ...}`
(`{"keys": [...]}` for a list), a key's id is its `access_key`, the secret is
shown once, in the answer to POST (201), and never again; GET and PUT answer
200, DELETE 204. A grant is a bucket and one of `read`, `readwrite`,
`fullaccess`. With a Spaces side attached (spaces_s3.FakeSpaces), each key
is made there too, so it opens exactly the buckets its grants name.
"""

from __future__ import annotations

from typing import Any

from support.fake_digitalocean.account import FakeAccount
from support.fake_digitalocean.core import (
    NO_CONTENT,
    NOW,
    Answer,
    Request,
    not_found,
    ok,
    page,
    unprocessable,
)

PERMISSIONS = ("read", "readwrite", "fullaccess")


def handle(state: FakeAccount, request: Request) -> Answer:
    parts, method = request.parts, request.method
    if parts[:2] != ("spaces", "keys") or len(parts) > 3:
        raise not_found()
    if len(parts) == 2:
        if method == "POST":
            return _create(state, request.body)
        if method == "GET":
            listed = [_shown(key) for key in state.spaces_keys.values()]
            return page(request, "/v2/spaces/keys", "keys", listed)
        raise not_found()
    key = state.spaces_keys.get(parts[2])
    if key is None:
        raise not_found()
    if method == "GET":
        return ok({"key": _shown(key)})
    if method in ("PUT", "PATCH"):
        if "name" in request.body or method == "PUT":
            key["name"] = _name(request.body)
        if "grants" in request.body or method == "PUT":
            key["grants"] = _grants(request.body)
        return ok({"key": _shown(key)})
    if method == "DELETE":
        del state.spaces_keys[key["access_key"]]
        return NO_CONTENT
    raise not_found()


def _create(state: FakeAccount, body: dict[str, Any]) -> Answer:
    name, grants = _name(body), _grants(body)
    access, secret = state.spaces_minter(name, grants)
    key = {"name": name, "access_key": access, "grants": grants, "created_at": NOW}
    state.spaces_keys[access] = key
    return ok({"key": {**key, "secret_key": secret}}, 201)


def _shown(key: dict[str, Any]) -> dict[str, Any]:
    """A key as any answer but the creation's shows it: no secret."""
    return {**key, "secret_key": ""}


def _name(body: dict[str, Any]) -> str:
    name = body.get("name")
    if not isinstance(name, str) or not name:
        raise unprocessable("name is required")
    return name


def _grants(body: dict[str, Any]) -> list[dict[str, str]]:
    grants = body.get("grants")
    if not isinstance(grants, list) or not grants:
        raise unprocessable("a key needs at least one grant")
    found = []
    for grant in grants:
        if not isinstance(grant, dict) or grant.get("permission") not in PERMISSIONS:
            raise unprocessable(f"permission must be one of {', '.join(PERMISSIONS)}")
        bucket = grant.get("bucket")
        if not isinstance(bucket, str):
            raise unprocessable("bucket must be a string")
        if grant["permission"] != "fullaccess" and not bucket:
            raise unprocessable("a scoped grant names its bucket")
        found.append({"bucket": bucket, "permission": grant["permission"]})
    return found
