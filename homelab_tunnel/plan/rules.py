"""Per-resource rules: what a change to each resource type means for the edge, in words.

Each rule returns (danger, consequence); a type without a rule is judged by
`safe`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from homelab_tunnel.plan.model import Action, Change, Danger


@dataclass(frozen=True)
class Values:
    before: Mapping[str, Any]
    after: Mapping[str, Any]
    unknown: Mapping[str, Any]

    def changed(self, key: str) -> bool:
        return bool(self.unknown.get(key)) or self.before.get(key) != self.after.get(key)

    def new(self, key: str) -> str:
        if self.unknown.get(key):
            return "a value known after apply"
        return repr(self.after.get(key))


_Rule = Callable[[Change, Values, bool], tuple[Danger, str]]


def safe(change: Change, values: Values, volume_lost: bool) -> tuple[Danger, str]:
    return Danger.SAFE, f"{change.address} {_past(change)}"


def _droplet(change: Change, values: Values, volume_lost: bool) -> tuple[Danger, str]:
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
    return safe(change, values, volume_lost)


def _volume(change: Change, values: Values, volume_lost: bool) -> tuple[Danger, str]:
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
    return safe(change, values, volume_lost)


def _zone(change: Change, values: Values, volume_lost: bool) -> tuple[Danger, str]:
    name = values.before.get("name") or change.address
    if change.action in (Action.DELETE, Action.REPLACE):
        verb = "deleted" if change.action is Action.DELETE else "replaced"
        return Danger.DATA_LOSS, (
            f"DNS zone {name} {verb}: every record in it goes too, including records "
            "this stack does not manage (mail, verification, other hosts)"
        )
    return safe(change, values, volume_lost)


def _reserved_address(change: Change, values: Values, volume_lost: bool) -> tuple[Danger, str]:
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
    return safe(change, values, volume_lost)


def _assignment(change: Change, values: Values, volume_lost: bool) -> tuple[Danger, str]:
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
    return safe(change, values, volume_lost)


def _record(change: Change, values: Values, volume_lost: bool) -> tuple[Danger, str]:
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
    return safe(change, values, volume_lost)


def _record_name(values: Mapping[str, Any]) -> str:
    fqdn = values.get("fqdn") or ".".join(
        str(part) for part in (values.get("name"), values.get("domain")) if part
    )
    kind = values.get("type")
    return f"{fqdn} ({kind})" if fqdn and kind else str(fqdn or "")


RULES: dict[str, _Rule] = {
    "digitalocean_droplet": _droplet,
    "digitalocean_volume": _volume,
    "digitalocean_domain": _zone,
    "digitalocean_reserved_ip": _reserved_address,
    "digitalocean_reserved_ipv6": _reserved_address,
    "digitalocean_reserved_ip_assignment": _assignment,
    "digitalocean_reserved_ipv6_assignment": _assignment,
    "digitalocean_record": _record,
}


def format_path(path: Sequence[Any] | Any) -> str:
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


def _past(change: Change) -> str:
    return {
        Action.CREATE: "created",
        Action.UPDATE: "updated in place",
        Action.REPLACE: "replaced",
        Action.DELETE: "deleted",
        Action.FORGET: "removed from state; the real resource is left alone",
    }[change.action]
