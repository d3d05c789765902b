"""What a Terraform plan will do to the edge, classified by how much it hurts.

Reads `terraform show -json PLANFILE` output (plain data, no Terraform or cdktf
needed) and gives every change a danger class, so a pull request shows a
replaced droplet or a deleted volume before anyone applies it:

- data loss: the state volume (or the DNS zone with every record in it) is
  deleted or replaced;
- address change: a reserved IP is released or replaced, a DNS record is
  deleted, replaced or pointed elsewhere;
- downtime: the droplet is replaced, deleted or resized, or the reserved IP
  is taken off it (the address itself survives, the service does not);
- safe: everything else (creations, in-place updates).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import IntEnum, StrEnum
from pathlib import Path
from typing import IO, Any

from homelab_tunnel.errors import InputError

# `terraform show -json` promises compatibility within a major format version.
SUPPORTED_FORMAT_MAJOR = "1"
EXPECTED = "expected the output of `terraform show -json PLANFILE`"


class Danger(IntEnum):
    """How bad a change is; higher is worse, so `max()` gives the verdict."""

    SAFE = 0
    DOWNTIME = 1
    ADDRESS_CHANGE = 2
    DATA_LOSS = 3

    @property
    def label(self) -> str:
        return self.name.lower().replace("_", " ")

    @property
    def option(self) -> str:
        """The spelling used on the command line (`--fail-on data-loss`)."""
        return self.name.lower().replace("_", "-")


class Action(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    REPLACE = "replace"
    DELETE = "delete"
    FORGET = "forget"


# Terraform's action lists, as `terraform show -json` spells them. no-op and
# read change nothing and are left out of every count.
_ACTIONS: dict[tuple[str, ...], Action | None] = {
    ("no-op",): None,
    ("read",): None,
    ("create",): Action.CREATE,
    ("update",): Action.UPDATE,
    ("delete", "create"): Action.REPLACE,
    ("create", "delete"): Action.REPLACE,
    ("delete",): Action.DELETE,
    ("forget",): Action.FORGET,
}

_REASONS = {
    "replace_because_tainted": "it is tainted (an earlier apply failed part-way)",
    "replace_by_request": "it was requested with -replace",
    "replace_by_triggers": "replace_triggered_by fired",
    "replace_because_cannot_update": "a changed attribute cannot be updated in place",
    "delete_because_no_resource_config": "it is no longer in the configuration",
    "delete_because_wrong_repetition": "its count/for_each changed shape",
    "delete_because_count_index": "its count index is out of range",
    "delete_because_each_key": "its for_each key is gone",
    "delete_because_no_module": "its module is no longer in the configuration",
    "delete_because_no_move_target": "its moved block has no target",
}


@dataclass(frozen=True)
class Change:
    """One resource the plan touches, and what that means for the edge."""

    address: str
    resource_type: str
    action: Action
    danger: Danger
    replace_paths: tuple[str, ...]
    action_reason: str | None
    consequence: str

    @property
    def because(self) -> str | None:
        """Why Terraform plans this: the forcing attributes, else its reason."""
        if self.replace_paths:
            return f"{_join(self.replace_paths)} changed"
        if self.action_reason:
            return _REASONS.get(self.action_reason, self.action_reason)
        return None


@dataclass(frozen=True)
class PlanSummary:
    source: str
    terraform_version: str
    changes: tuple[Change, ...]
    notes: tuple[str, ...]
    errored: bool

    @property
    def counts(self) -> dict[Action, int]:
        counted = Counter(change.action for change in self.changes)
        return {action: counted[action] for action in Action}

    @property
    def verdict(self) -> Danger | None:
        """The worst danger in the plan; None when nothing changes."""
        return max((change.danger for change in self.changes), default=None)

    @property
    def verdict_label(self) -> str:
        return self.verdict.label if self.verdict is not None else "no changes"

    def reaches(self, threshold: Danger) -> bool:
        """True when the plan holds a change of `threshold` or worse.

        An errored plan never passes a threshold: it may hide any change.
        """
        verdict = self.verdict
        return self.errored or (verdict is not None and verdict >= threshold)

    @property
    def warnings(self) -> list[Change]:
        return [change for change in self.changes if change.danger > Danger.SAFE]


# ---------------------------------------------------------------------------
# Reading and checking the document
# ---------------------------------------------------------------------------


def parse_plan(text: str, source: str) -> dict[str, Any]:
    """The plan document, or `InputError` saying what the input is instead."""
    try:
        document = json.loads(text)
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


# ---------------------------------------------------------------------------
# Classification
# ---------------------------------------------------------------------------


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
        notes=tuple(_notes(document, errored)),
        errored=errored,
    )


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
    if key not in _ACTIONS:
        allowed = ", ".join(json.dumps(list(k)) for k in _ACTIONS)
        raise InputError(
            source, [f"{where}.change.actions: {json.dumps(actions)} is unknown (known: {allowed})"]
        )
    action = _ACTIONS[key]
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
        replace_paths=tuple(_format_path(path) for path in change.get("replace_paths") or []),
        action_reason=reason if isinstance(reason, str) else None,
        consequence="",
    )
    values = _Values(
        _object(change, "before"), _object(change, "after"), _object(change, "after_unknown")
    )
    danger, consequence = _RULES.get(draft.resource_type, _safe)(draft, values, volume_lost)
    return replace(draft, danger=danger, consequence=consequence)


def _object(change: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = change.get(key)
    return value if isinstance(value, dict) else {}


def _notes(document: Mapping[str, Any], errored: bool) -> Iterable[str]:
    if errored:
        yield "the plan errored: it may not show every change, so it is never judged safe"
    if document.get("complete") is False:
        yield "the plan is incomplete (deferred changes or -target): another plan will follow"


@dataclass(frozen=True)
class _Values:
    before: Mapping[str, Any]
    after: Mapping[str, Any]
    unknown: Mapping[str, Any]

    def changed(self, key: str) -> bool:
        return bool(self.unknown.get(key)) or self.before.get(key) != self.after.get(key)

    def new(self, key: str) -> str:
        if self.unknown.get(key):
            return "a value known after apply"
        return repr(self.after.get(key))


# ---------------------------------------------------------------------------
# Per-resource rules: (danger, what will happen, in words)
# ---------------------------------------------------------------------------

_Rule = Callable[[Change, _Values, bool], tuple[Danger, str]]


def _safe(change: Change, values: _Values, volume_lost: bool) -> tuple[Danger, str]:
    return Danger.SAFE, f"{change.address} {_past(change)}"


def _droplet(change: Change, values: _Values, volume_lost: bool) -> tuple[Danger, str]:
    state = (
        "and the state volume is lost in this same plan"
        if volume_lost
        else "state survives on the volume"
    )
    if change.action is Action.REPLACE:
        return Danger.DOWNTIME, (
            f"droplet replaced because {change.because or 'Terraform must re-create it'}: "
            f"the sites are down until the new droplet boots (~3-5 min); {state}"
        )
    if change.action is Action.DELETE:
        return Danger.DOWNTIME, (
            "droplet deleted: the sites are down until a droplet exists again; " + state
        )
    if change.action is Action.UPDATE and values.changed("size"):
        return Danger.DOWNTIME, (
            f"droplet resized in place to {values.new('size')}: DigitalOcean powers it off "
            "for the resize, so the sites are down for a few minutes"
        )
    return _safe(change, values, volume_lost)


def _volume(change: Change, values: _Values, volume_lost: bool) -> tuple[Danger, str]:
    name = values.before.get("name") or change.address
    if change.action is Action.DELETE:
        return Danger.DATA_LOSS, (
            f"volume {name} deleted: Headscale's database and keys, Tailscale's state and "
            "the TLS certificates on it are gone for good (snapshot it first if this is meant)"
        )
    if change.action is Action.REPLACE:
        return Danger.DATA_LOSS, (
            f"volume {name} replaced because {change.because or 'Terraform must re-create it'}: "
            "the new volume is empty; Headscale's keys, nodes and the certificates are lost"
        )
    return _safe(change, values, volume_lost)


def _zone(change: Change, values: _Values, volume_lost: bool) -> tuple[Danger, str]:
    name = values.before.get("name") or change.address
    if change.action in (Action.DELETE, Action.REPLACE):
        verb = "deleted" if change.action is Action.DELETE else "replaced"
        return Danger.DATA_LOSS, (
            f"DNS zone {name} {verb}: every record in it goes too, including records "
            "this stack does not manage (mail, verification, other hosts)"
        )
    return _safe(change, values, volume_lost)


def _reserved_address(change: Change, values: _Values, volume_lost: bool) -> tuple[Danger, str]:
    address = values.before.get("ip_address") or values.before.get("ip") or "the reserved address"
    if change.action is Action.DELETE:
        return Danger.ADDRESS_CHANGE, (
            f"reserved IP {address} released: DNS has nothing to point at and the address "
            "cannot be got back"
        )
    if change.action is Action.REPLACE:
        return Danger.ADDRESS_CHANGE, (
            f"reserved IP {address} replaced because "
            f"{change.because or 'Terraform must re-create it'}: the edge gets a new public "
            "address; records follow on apply, but resolvers keep the old one until the TTL "
            "runs out"
        )
    return _safe(change, values, volume_lost)


def _assignment(change: Change, values: _Values, volume_lost: bool) -> tuple[Danger, str]:
    address = values.before.get("ip_address") or values.before.get("ip") or "the reserved IP"
    if change.action is Action.REPLACE:
        what = (
            "moves to the new droplet"
            if change.replace_paths == ("droplet_id",)
            else f"is unassigned and assigned again because {change.because or 'of the plan'}"
        )
        return Danger.DOWNTIME, (
            f"reserved IP {address} {what}: nothing answers on it in between; "
            "the address and DNS stay the same"
        )
    if change.action is Action.DELETE:
        return Danger.DOWNTIME, (
            f"reserved IP {address} is taken off the droplet: the sites are unreachable "
            "until it is assigned again"
        )
    return _safe(change, values, volume_lost)


def _record(change: Change, values: _Values, volume_lost: bool) -> tuple[Danger, str]:
    record = _record_name(values.before or values.after)
    if change.action is Action.DELETE:
        return Danger.ADDRESS_CHANGE, (
            f"DNS record {record} deleted: the name stops resolving to the edge"
        )
    if change.action is Action.REPLACE:
        return Danger.ADDRESS_CHANGE, (
            f"DNS record {record} replaced because "
            f"{change.because or 'Terraform must re-create it'}: the name does not resolve "
            "between the delete and the create"
        )
    # A new value for an address record moves the name; TTL or CAA edits do not.
    moves = values.changed("name") or values.changed("type")
    if values.after.get("type") in ("A", "AAAA", "CNAME") and values.changed("value"):
        moves = True
    if change.action is Action.UPDATE and moves:
        return Danger.ADDRESS_CHANGE, (
            f"DNS record {record} now points to {values.new('value')}: clients follow once "
            "the TTL runs out"
        )
    return _safe(change, values, volume_lost)


def _record_name(values: Mapping[str, Any]) -> str:
    fqdn = values.get("fqdn") or ".".join(
        str(part) for part in (values.get("name"), values.get("domain")) if part
    )
    kind = values.get("type")
    return f"{fqdn} ({kind})" if fqdn and kind else str(fqdn or "")


_RULES: dict[str, _Rule] = {
    "digitalocean_droplet": _droplet,
    "digitalocean_volume": _volume,
    "digitalocean_domain": _zone,
    "digitalocean_reserved_ip": _reserved_address,
    "digitalocean_reserved_ipv6": _reserved_address,
    "digitalocean_reserved_ip_assignment": _assignment,
    "digitalocean_reserved_ipv6_assignment": _assignment,
    "digitalocean_record": _record,
}


# ---------------------------------------------------------------------------
# Small text helpers
# ---------------------------------------------------------------------------


def _format_path(path: Sequence[Any] | Any) -> str:
    """`["inbound_rule", 0, "port_range"]` -> `inbound_rule[0].port_range`."""
    if not isinstance(path, list):
        return str(path)
    text = ""
    for step in path:
        if isinstance(step, int):
            text += f"[{step}]"
        else:
            text += f".{step}" if text else str(step)
    return text


def _join(items: Sequence[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _past(change: Change) -> str:
    return {
        Action.CREATE: "created",
        Action.UPDATE: "updated in place",
        Action.REPLACE: "replaced",
        Action.DELETE: "deleted",
        Action.FORGET: "removed from state; the real resource is left alone",
    }[change.action]


# ---------------------------------------------------------------------------
# Input: a file, or '-' for stdin
# ---------------------------------------------------------------------------


def read_plan(path: str, stdin: IO[bytes]) -> PlanSummary:
    """Summarize the plan JSON at `path` ('-' reads `stdin`)."""
    source = "<stdin>" if path == "-" else path
    try:
        data = stdin.read() if path == "-" else Path(path).read_bytes()
    except FileNotFoundError:
        raise InputError(source, [f"no such file; {EXPECTED}"]) from None
    except OSError as exc:
        raise InputError(source, [f"cannot read: {exc.strerror or exc}"]) from None
    return summarize_text(_decode(data, source), source)


def _decode(data: bytes, source: str) -> str:
    # PowerShell's `>` writes UTF-16 with a byte order mark; accept it.
    encoding = "utf-16" if data[:2] in (b"\xff\xfe", b"\xfe\xff") else "utf-8-sig"
    try:
        return data.decode(encoding)
    except UnicodeDecodeError:
        raise InputError(source, [f"not UTF-8 text; {EXPECTED}"]) from None
