"""Plan documents for tests: the recorded ones, and small hand-made variants."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from homelab_tunnel.plan.classify import summarize
from homelab_tunnel.plan.model import Danger, PlanSummary
from support.config import DATA

PLANS = DATA / "plans"
# A droplet as plans show it, for hand-made changes.
DROPLET = {"name": "edge", "size": "s-1vcpu-1gb", "user_data": "abc"}
RECORDED = sorted(path.stem for path in PLANS.glob("*.json"))


def recorded(name: str) -> dict[str, Any]:
    """A real `terraform show -json` plan from tests/data/plans."""
    document: dict[str, Any] = json.loads((PLANS / f"{name}.json").read_text())
    return document


def plan_path(name: str) -> Path:
    return PLANS / f"{name}.json"


def plan(*changes: dict[str, Any], **top: Any) -> dict[str, Any]:
    """A minimal plan document (format 1.2, as Terraform 1.11 writes it)."""
    document: dict[str, Any] = {
        "format_version": "1.2",
        "terraform_version": "1.11.4",
        "planned_values": {"root_module": {}},
        "resource_changes": list(changes),
        "applyable": True,
        "complete": True,
        "errored": False,
    }
    document.update(top)
    return document


def change(
    address: str,
    actions: list[str],
    *,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    after_unknown: dict[str, Any] | None = None,
    replace_paths: list[list[Any]] | None = None,
    **entry: Any,
) -> dict[str, Any]:
    """One resource_changes entry; the type is read from the address."""
    kind, name = address.split(".", 1)
    body: dict[str, Any] = {
        "actions": actions,
        "before": copy.deepcopy(before),
        "after": copy.deepcopy(after),
        "after_unknown": after_unknown or {},
    }
    if replace_paths is not None:
        body["replace_paths"] = replace_paths
    return {
        "address": address,
        "mode": "managed",
        "type": kind,
        "name": name,
        "provider_name": "registry.terraform.io/digitalocean/digitalocean",
        "change": body,
        **entry,
    }


NONE = {"create": 0, "update": 0, "replace": 0, "delete": 0, "forget": 0}


def summary_of(document: dict[str, Any]) -> PlanSummary:
    return summarize(document, "plan.json")


def counts_of(summary: PlanSummary) -> dict[str, int]:
    return {action.value: count for action, count in summary.counts.items()}


def classes_of(summary: PlanSummary) -> dict[str, tuple[str, Danger]]:
    return {c.address: (c.action.value, c.danger) for c in summary.changes}
