"""Monitoring alert policies: create, read, update (PUT), delete.

The envelope is `policy` (monitoring_create_alertPolicy answers 200, not 201);
`entities` are droplet ids as strings; a policy needs at least one channel.
"""

from __future__ import annotations

from typing import Any

from support.fake_digitalocean.account import FakeAccount
from support.fake_digitalocean.core import NO_CONTENT, Answer, Request, not_found, ok, unprocessable

COMPARISONS = ("GreaterThan", "LessThan")
WINDOWS = ("5m", "10m", "30m", "1h")


def handle(state: FakeAccount, request: Request) -> Answer:
    parts, method = request.parts, request.method
    if parts == ("monitoring", "alerts") and method == "POST":
        policy = {"uuid": state.uuid(), **_fields(state, request.body)}
        state.alerts[policy["uuid"]] = policy
        return ok({"policy": policy})
    policy = state.alerts.get(request.item(2))
    if policy is None or len(parts) != 3 or parts[1] != "alerts":
        raise not_found()
    if method == "GET":
        return ok({"policy": policy})
    if method == "PUT":
        policy |= _fields(state, request.body)
        return ok({"policy": policy})
    if method == "DELETE":
        del state.alerts[policy["uuid"]]
        return NO_CONTENT
    raise not_found()


def _fields(state: FakeAccount, body: dict[str, Any]) -> dict[str, Any]:
    if not str(body.get("type", "")).startswith("v1/insights/droplet/"):
        raise unprocessable("type is not a droplet metric")
    if body.get("compare") not in COMPARISONS or body.get("window") not in WINDOWS:
        raise unprocessable("compare or window is not allowed")
    entities = [str(entity) for entity in body.get("entities") or []]
    for entity in entities:
        if not entity.isdigit() or int(entity) not in state.droplets:
            raise unprocessable(f"entity {entity} is not a Droplet of this account")
    channels = body.get("alerts") or {}
    if not channels.get("email") and not channels.get("slack"):
        raise unprocessable("at least one notification channel is required")
    return {
        "type": body["type"],
        "description": body.get("description") or "",
        "compare": body["compare"],
        "value": body.get("value"),
        "window": body["window"],
        "entities": entities,
        "tags": list(body.get("tags") or []),
        "alerts": {
            "email": list(channels.get("email") or []),
            "slack": list(channels.get("slack") or []),
        },
        "enabled": body.get("enabled", True),
    }
