"""The fake account: everything it holds, and the account, SSH key, region and action endpoints.

Tests change `FakeAccount` before calling (a zone missing, a key twice,
a rate limit); the resource endpoints change it as the real API would.
"""

from __future__ import annotations

import itertools
import secrets
import string
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from support.fake_digitalocean.core import (
    NOW,
    Answer,
    Request,
    not_found,
    ok,
    page,
    unprocessable,
)

TOKEN = "dop_v1_" + "0" * 64

# slug: (memory MiB, vCPUs, disk GB, USD per month), as DigitalOcean lists them.
SIZES: dict[str, tuple[int, int, int, float]] = {
    "s-1vcpu-512mb-10gb": (512, 1, 10, 4.0),
    "s-1vcpu-1gb": (1024, 1, 25, 6.0),
    "s-1vcpu-2gb": (2048, 1, 50, 12.0),
    "s-2vcpu-2gb": (2048, 2, 60, 18.0),
    "s-2vcpu-4gb": (4096, 2, 80, 24.0),
    "s-4vcpu-8gb": (8192, 4, 160, 48.0),
}
FRA1_SIZES = list(SIZES)


def region(slug: str, name: str, *, sizes: list[str], storage: bool = True) -> dict[str, Any]:
    features = ["backups", "ipv6", "metadata", "install_agent", "image_transfer"]
    if storage:
        features.append("storage")
    return {"name": name, "slug": slug, "features": features, "available": True, "sizes": sizes}


def ssh_key(key_id: int, name: str, fingerprint: str) -> dict[str, Any]:
    return {
        "id": key_id,
        "fingerprint": fingerprint,
        "public_key": f"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI{key_id:040d} {name}",
        "name": name,
    }


def record(record_id: int, record_type: str, name: str, data: str) -> dict[str, Any]:
    return {
        "id": record_id,
        "type": record_type,
        "name": name,
        "data": data,
        "priority": None,
        "port": None,
        "ttl": 1800,
        "weight": None,
        "flags": None,
        "tag": None,
    }


def zone_defaults(first_id: int = 1) -> list[dict[str, Any]]:
    """What DigitalOcean puts in a new zone: three NS records and the SOA."""
    ids = itertools.count(first_id)
    return [
        record(next(ids), "NS", "@", "ns1.digitalocean.com"),
        record(next(ids), "NS", "@", "ns2.digitalocean.com"),
        record(next(ids), "NS", "@", "ns3.digitalocean.com"),
        record(next(ids), "SOA", "@", "1800"),
    ]


def _random_spaces_key(_name: str, _grants: list[dict[str, str]]) -> tuple[str, str]:
    """A pair shaped like DigitalOcean's: `DO` and 18 capitals or digits, a 43-character secret."""
    alphabet = string.ascii_uppercase + string.digits
    access = "DO" + "".join(secrets.choice(alphabet) for _ in range(18))
    return access, secrets.token_urlsafe(32)[:43]


def _default_project() -> dict[str, Any]:
    return {
        "id": "5eed0000-0000-4000-8000-000000000000",
        "owner_uuid": "b6fr89dbf6d9156cace5f3c78dc9851d957381ef",
        "owner_id": 2,
        "name": "Default",
        "description": "",
        "purpose": "Just trying out DigitalOcean",
        "environment": "Development",
        "is_default": True,
        "created_at": NOW,
        "updated_at": NOW,
    }


@dataclass
class FakeAccount:
    """Everything the fake API knows; tests change it before calling."""

    account: dict[str, Any] = field(
        default_factory=lambda: {
            "droplet_limit": 25,
            "floating_ip_limit": 3,
            "volume_limit": 100,
            "email": "ops@example.com",
            "uuid": "b6fr89dbf6d9156cace5f3c78dc9851d957381ef",
            "email_verified": True,
            "status": "active",
            "status_message": "",
            "team": {"uuid": "5df3e3004a17e242b7c20ca6c9fc25b701a47ece", "name": "Homelab"},
        }
    )
    ssh_keys: list[dict[str, Any]] = field(
        default_factory=lambda: [
            ssh_key(512189, "homelab-admin", "3b:16:bf:e4:8b:00:8b:b8:59:8c:a9:d3:f0:19:45:fa"),
        ]
    )
    # Zone name -> its records (the zone itself has no other state worth keeping).
    domains: dict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: {"example.com": zone_defaults()}
    )
    regions: list[dict[str, Any]] = field(
        default_factory=lambda: [
            region("ams3", "Amsterdam 3", sizes=FRA1_SIZES),
            region("fra1", "Frankfurt 1", sizes=FRA1_SIZES),
            region("nyc3", "New York 3", sizes=FRA1_SIZES),
        ]
    )
    volumes: list[dict[str, Any]] = field(default_factory=list)
    snapshots: dict[str, dict[str, Any]] = field(default_factory=dict)
    droplets: dict[int, dict[str, Any]] = field(default_factory=dict)
    reserved_ips: dict[str, dict[str, Any]] = field(default_factory=dict)
    reserved_ipv6: dict[str, dict[str, Any]] = field(default_factory=dict)
    firewalls: dict[str, dict[str, Any]] = field(default_factory=dict)
    projects: dict[str, dict[str, Any]] = field(
        default_factory=lambda: {_default_project()["id"]: _default_project()}
    )
    # Project id -> the URNs assigned to it, in assignment order.
    project_resources: dict[str, list[str]] = field(default_factory=dict)
    alerts: dict[str, dict[str, Any]] = field(default_factory=dict)
    actions: dict[int, dict[str, Any]] = field(default_factory=dict)
    # Access key -> the Spaces key (no secret: the API shows it once); and who makes the
    # pairs (spaces_keys.random_key, or a Spaces side's, so they open its buckets).
    spaces_keys: dict[str, dict[str, Any]] = field(default_factory=dict)
    spaces_minter: Callable[[str, list[dict[str, str]]], tuple[str, str]] = field(
        default_factory=lambda: _random_spaces_key
    )
    # Answer 429 to this many requests before serving normally (-1: always).
    rate_limited: int = 0
    retry_after: str | None = "1"
    # Paths (prefixes) answered with 403, as for a token without that scope.
    forbidden: tuple[str, ...] = ()
    serial: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    # -- ids ----------------------------------------------------------------

    def number(self) -> int:
        """A small number no other object of this account has used."""
        return next(self.serial)

    def uuid(self) -> str:
        return str(uuid.UUID(int=0x5EED0000_0000_4000_8000_000000000000 + self.number()))

    # -- lookups ------------------------------------------------------------

    def region_object(self, slug: Any, *, feature: str | None = None) -> dict[str, Any]:
        """The account's region `slug`, or 422 as the API answers an unknown or closed one."""
        for item in self.regions:
            if item["slug"] == slug and item["available"]:
                if feature is not None and feature not in item["features"]:
                    raise unprocessable(f"{feature} is not available in {slug}")
                return item
        raise unprocessable(f"Region is not available: {slug}")

    def default_project(self) -> dict[str, Any]:
        return next(project for project in self.projects.values() if project["is_default"])

    def volume(self, volume_id: str) -> dict[str, Any]:
        for item in self.volumes:
            if item["id"] == volume_id:
                return item
        raise not_found()

    def droplet(self, droplet_id: Any) -> dict[str, Any]:
        if isinstance(droplet_id, str) and droplet_id.isdigit():
            droplet_id = int(droplet_id)
        droplet = self.droplets.get(droplet_id) if isinstance(droplet_id, int) else None
        if droplet is None:
            raise not_found()
        return droplet

    def urn_exists(self, urn: str) -> bool:
        """Whether a `do:<kind>:<id>` URN (godo's ToURN) names an object that exists."""
        kind, _, ident = urn.removeprefix("do:").partition(":")
        if kind == "droplet":
            return ident.isdigit() and int(ident) in self.droplets
        if kind == "volume":
            return any(item["id"] == ident for item in self.volumes)
        if kind in ("reservedip", "floatingip"):
            return ident in self.reserved_ips
        if kind == "reservedipv6":
            return ident in self.reserved_ipv6
        if kind == "domain":
            return ident in self.domains
        return False

    # -- actions ------------------------------------------------------------

    def start_action(
        self, kind: str, resource_id: int, resource_type: str, slug: str
    ) -> dict[str, Any]:
        """An action, "in-progress" as posted, that reads back completed: the fake works at once.

        The provider still sleeps 10 s before its first poll of every wait.
        """
        action = {
            "id": 2_000_000_000 + self.number(),
            "status": "in-progress",
            "type": kind,
            "started_at": NOW,
            "completed_at": None,
            "resource_id": resource_id,
            "resource_type": resource_type,
            "region": self.region_object(slug),
            "region_slug": slug,
        }
        self.actions[action["id"]] = action
        return action

    def read_action(self, action_id: str) -> Answer:
        action = self.actions.get(int(action_id)) if action_id.isdigit() else None
        if action is None:
            raise not_found()
        action.update(status="completed", completed_at=NOW)
        return ok({"action": action})


def handle(state: FakeAccount, request: Request) -> Answer:
    """GET /v2/account, /v2/account/keys, /v2/regions, /v2/actions/{id}."""
    if request.method != "GET":
        raise not_found()
    if request.parts == ("account",):
        return ok({"account": state.account})
    if request.parts == ("account", "keys"):
        return page(request, "/v2/account/keys", "ssh_keys", state.ssh_keys)
    if request.parts == ("regions",):
        return page(request, "/v2/regions", "regions", state.regions)
    if len(request.parts) == 2 and request.parts[0] == "actions":
        return state.read_action(request.parts[1])
    raise not_found()
