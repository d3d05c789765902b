"""Read `terraform show -json PLANFILE` output and classify every change (see plan.model).

Plain data, no Terraform or cdktf needed: a pull request shows a replaced
droplet or a deleted volume before anyone applies it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from homelab_tunnel.errors import InputError
from homelab_tunnel.inputs import label, read_text
from homelab_tunnel.plan.model import ACTIONS, Action, Change, Danger, PlanSummary
from homelab_tunnel.plan.rules import RULES, Values, format_path, unclassified

# `terraform show -json` promises compatibility within a major format version.
SUPPORTED_FORMAT_MAJOR = "1"
EXPECTED = "expected the output of `terraform show -json PLANFILE`"


def parse_plan(text: str, source: str) -> dict[str, Any]:
    """The plan document, or `InputError` saying what the input is instead."""
    try:
        document = json.loads(text)
    except RecursionError:
        raise InputError(source, [f"JSON nested too deeply to be a plan; {EXPECTED}"]) from None
    except json.JSONDecodeError as exc:
        raise InputError(
            source,
            [f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); {EXPECTED}"],
        ) from None
    if not isinstance(document, dict):
        raise InputError(source, [f"a JSON {_json_kind(document)} is not a plan; {EXPECTED}"])
    problem = _not_a_plan(document)
    if problem:
        raise InputError(source, [f"{problem}; {EXPECTED}"])
    return document


def _not_a_plan(document: Mapping[str, Any]) -> str | None:
    if "//" in document or ("resource" in document and "terraform" in document):
        return "this is Terraform configuration (cdk.tf.json), not a plan"
    if "lineage" in document and "serial" in document:
        return "this is a Terraform state file, not a plan"
    version = document.get("format_version")
    if version is None:
        return "no format_version: this is not Terraform JSON output"
    if not isinstance(version, str) or version.split(".")[0] != SUPPORTED_FORMAT_MAJOR:
        return (
            f"format_version {version!r} is not supported "
            f"(this tool reads format {SUPPORTED_FORMAT_MAJOR}.x, written by Terraform 1.x)"
        )
    if "values" in document and "planned_values" not in document:
        return "this is state (`terraform show -json` without a plan file), not a plan"
    if "planned_values" not in document and "resource_changes" not in document:
        return "no planned_values or resource_changes: this is not a plan"
    return None


def _json_kind(value: object) -> str:
    return {list: "list", str: "string", bool: "boolean"}.get(type(value), "number")


def summarize(document: Mapping[str, Any], source: str) -> PlanSummary:
    """Classify every managed resource change in a parsed plan."""
    entries = document.get("resource_changes") or []
    if not isinstance(entries, list):
        raise InputError(source, ["resource_changes: expected a list"])
    raw = [_read_entry(entry, index, source) for index, entry in enumerate(entries)]
    # A replaced droplet only keeps its state if the volume survives the same plan.
    volume_lost = any(
        entry["type"] == "digitalocean_volume" and action in (Action.DELETE, Action.REPLACE)
        for entry, action in raw
    )
    changes = [
        _classify(entry, action, volume_lost=volume_lost)
        for entry, action in raw
        if action is not None
    ]
    changes.sort(key=lambda change: (-change.danger, change.address))
    errored = document.get("errored") is True
    return PlanSummary(
        source=source,
        terraform_version=str(document.get("terraform_version", "unknown")),
        changes=tuple(changes),
        notes=tuple(_notes(document, errored, changes)),
        errored=errored,
        headscale_change=_headscale_change(document),
    )


def _headscale_change(document: Mapping[str, Any]) -> tuple[str, str] | None:
    """The stack's headscale_version output before and after, when the plan changes it.

    The droplet's user_data is only a hash in plans, so the version travels in
    an output; a first apply (no before) is not an upgrade.
    """
    outputs = document.get("output_changes")
    change = outputs.get("headscale_version") if isinstance(outputs, dict) else None
    if not isinstance(change, dict):
        return None
    before, after = change.get("before"), change.get("after")
    if isinstance(before, str) and isinstance(after, str) and before != after:
        return before, after
    return None


def summarize_text(text: str, source: str) -> PlanSummary:
    return summarize(parse_plan(text, source), source)


def _read_entry(entry: Any, index: int, source: str) -> tuple[Mapping[str, Any], Action | None]:
    where = f"resource_changes[{index}]"
    if not isinstance(entry, dict) or not isinstance(entry.get("change"), dict):
        raise InputError(source, [f"{where}: expected an object with a 'change' object"])
    actions = entry["change"].get("actions")
    if not isinstance(actions, list) or not all(isinstance(a, str) for a in actions):
        raise InputError(source, [f"{where}.change.actions: expected a list of action names"])
    key = tuple(actions)
    if key not in ACTIONS:
        allowed = ", ".join(json.dumps(list(k)) for k in ACTIONS)
        raise InputError(
            source, [f"{where}.change.actions: {json.dumps(actions)} is unknown (known: {allowed})"]
        )
    action = ACTIONS[key]
    if entry.get("mode", "managed") != "managed":
        action = None  # data sources are only ever read
    if not isinstance(entry.get("address"), str) or not isinstance(entry.get("type"), str):
        raise InputError(source, [f"{where}: expected string 'address' and 'type'"])
    return entry, action


def _classify(entry: Mapping[str, Any], action: Action, *, volume_lost: bool) -> Change:
    change = entry["change"]
    address = entry["address"]
    if isinstance(entry.get("deposed"), str):
        address = f"{address} (deposed object {entry['deposed']})"
    reason = entry.get("action_reason")
    draft = Change(
        address=address,
        resource_type=entry["type"],
        action=action,
        danger=Danger.SAFE,
        replace_paths=tuple(format_path(path) for path in change.get("replace_paths") or []),
        action_reason=reason if isinstance(reason, str) else None,
        consequence="",
    )
    values = Values(
        _object(change, "before"),
        _object(change, "after"),
        _object(change, "after_unknown"),
        _object(change, "after_sensitive"),
    )
    danger, consequence = RULES.get(draft.resource_type, unclassified)(draft, values, volume_lost)
    if action in (Action.DELETE, Action.REPLACE) and danger < Danger.DOWNTIME:
        # Every delete is classified: a rule that calls one safe is overruled.
        danger = Danger.DOWNTIME
        consequence += "; a delete or replacement counts as downtime at least"
    return replace(draft, danger=danger, consequence=consequence)


def _object(change: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = change.get(key)
    return value if isinstance(value, dict) else {}


# The config object's address: its first creation beside a droplet replacement
# is the move of an edge deployed by an earlier version to the in-place channel.
CONFIG_OBJECT = "digitalocean_spaces_bucket_object.config"


def _notes(
    document: Mapping[str, Any], errored: bool, changes: Iterable[Change] = ()
) -> Iterable[str]:
    actions = {change.address: change.action for change in changes}
    if (
        actions.get(CONFIG_OBJECT) is Action.CREATE
        and actions.get("digitalocean_droplet.edge") is Action.REPLACE
    ):
        yield (
            "this apply moves the edge to the in-place config channel: its droplet is replaced "
            "once, on the same volume; from then on sites, policy and the webhook change in place"
        )
    if errored:
        yield "the plan errored: it may not show every change, so it is never judged safe"
    if document.get("complete") is False:
        yield "the plan is incomplete (deferred changes or -target): another plan will follow"


def read_plan(path: str) -> PlanSummary:
    """Summarize the plan JSON at `path` ('-' reads stdin)."""
    return summarize_text(read_text(path, expected=EXPECTED), label(path))
