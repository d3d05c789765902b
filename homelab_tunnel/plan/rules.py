"""Per-resource rules: what a change to each resource type means for the edge, in words.

Each rule returns (danger, consequence). A type without a rule is judged by
`unclassified`: creations and updates are safe, but a delete or replacement
is at least downtime, because nothing here knows it to be harmless.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from homelab_tunnel.plan.edge_config import describe, edge_config, opened_ports, scrapers_added
from homelab_tunnel.plan.firewall import has_true, inbound_unknown, opens_ssh, widened_inbound
from homelab_tunnel.plan.model import Action, Change, Danger, join
from homelab_tunnel.plan.policy import policy_exposures
from homelab_tunnel.plan.spaces import (
    account_wide,
    acl_opened,
    denies,
    public_statements,
    widened_grants,
)


@dataclass(frozen=True)
class Values:
    before: Mapping[str, Any]
    after: Mapping[str, Any]
    unknown: Mapping[str, Any]
    # after_sensitive: what Terraform marks sensitive is never quoted in a consequence.
    sensitive: Mapping[str, Any] = field(default_factory=dict)

    def changed(self, key: str) -> bool:
        return bool(self.unknown.get(key)) or self.before.get(key) != self.after.get(key)

    def new(self, key: str) -> str:
        if self.sensitive.get(key):
            return "a sensitive value"
        if self.unknown.get(key):
            return "a value known after apply"
        return repr(self.after.get(key))


_Rule = Callable[[Change, Values, bool], tuple[Danger, str]]


def safe(change: Change, values: Values, volume_lost: bool) -> tuple[Danger, str]:
    return Danger.SAFE, f"{change.address} {_past(change)}"


def unclassified(change: Change, values: Values, volume_lost: bool) -> tuple[Danger, str]:
    """No rule for this type: a delete or replacement is downtime until someone reviews it."""
    if change.action in (Action.DELETE, Action.REPLACE):
        return Danger.DOWNTIME, (
            f"{change.address} {_past(change)}: homelab-tunnel has no rule for "
            f"{change.resource_type}, so losing it counts as downtime; check what depends on it"
        )
    return safe(change, values, volume_lost)


def _firewall(change: Change, values: Values, volume_lost: bool) -> tuple[Danger, str]:
    if change.action is Action.DELETE:
        return Danger.EXPOSURE, (
            "firewall deleted: nothing filters inbound traffic to the droplet any more; SSH "
            "and every other listening port are open to the internet until a firewall exists"
        )
    if change.action is Action.REPLACE:
        return Danger.EXPOSURE, (
            f"firewall replaced because {change.because or 'Terraform must re-create it'}: "
            "between the delete and the create the droplet has no firewall"
        )
    if change.action is not Action.UPDATE:
        return safe(change, values, volume_lost)
    if inbound_unknown(values.unknown):
        return Danger.EXPOSURE, (
            "firewall inbound rules are known only after apply: this plan cannot show that "
            "they do not open more; review the configuration change behind it"
        )
    droplets = values.after.get("droplet_ids")
    if not values.unknown.get("droplet_ids") and values.before.get("droplet_ids") and not droplets:
        return Danger.EXPOSURE, (
            "the droplet is taken out of the firewall: nothing filters its inbound traffic"
        )
    opened = widened_inbound(values.before.get("inbound_rule"), values.after.get("inbound_rule"))
    if opened:
        ssh = " SSH is reachable from more of the internet." if opens_ssh(opened) else ""
        return Danger.EXPOSURE, f"firewall lets more in: {'; '.join(opened)}.{ssh}"
    return safe(change, values, volume_lost)


def _alert(change: Change, values: Values, volume_lost: bool) -> tuple[Danger, str]:
    if change.action in (Action.DELETE, Action.REPLACE):
        what = values.before.get("description") or change.address
        return Danger.DOWNTIME, (
            f"monitor alert {_past(change)} ({what}): until it exists again nobody is told "
            "when the edge runs out of CPU, memory or disk"
        )
    return safe(change, values, volume_lost)


def _project(change: Change, values: Values, volume_lost: bool) -> tuple[Danger, str]:
    if change.action in (Action.DELETE, Action.REPLACE):
        name = values.before.get("name") or change.address
        return Danger.DOWNTIME, (
            f"project {name} {_past(change)}: the edge's resources are no longer grouped "
            "in the control panel; nothing goes offline, but a delete is never waved through"
        )
    return safe(change, values, volume_lost)


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


# ---------------------------------------------------------------------------
# Spaces: buckets (the backups, later the config channel), their objects and keys
# ---------------------------------------------------------------------------


def _bucket(change: Change, values: Values, volume_lost: bool) -> tuple[Danger, str]:
    """Deleting a versioned bucket is data loss: that is how this rule knows it holds backups.

    Versioning is what keeps overwritten and deleted objects for the
    retention window, which is what makes the backup bucket a backup
    (infra/constructs/backup.py always turns it on). An unversioned bucket
    holds nothing but current objects, so losing it is downtime.
    """
    name = values.before.get("name") or values.after.get("name") or change.address
    found = [safe(change, values, volume_lost)]
    if change.action in (Action.DELETE, Action.REPLACE):
        found.append(_bucket_lost(change, values, name))
    if change.action in (Action.CREATE, Action.UPDATE, Action.REPLACE) and (
        opened := _bucket_opened(values)
    ):
        found.append((Danger.EXPOSURE, f"bucket {name} {'; '.join(opened)}"))
    return max(found, key=lambda verdict: verdict[0])


def _bucket_opened(values: Values) -> list[str]:
    opened = []
    if values.unknown.get("acl"):
        opened.append("gets an ACL known only after apply")
    elif acl := acl_opened(values.before, values.after):
        anyone = "anyone on the internet can list and download every object in it"
        opened.append(f"made {acl}: {anyone if acl == 'public-read' else 'no longer private'}")
    if values.after.get("force_destroy") is True and values.before.get("force_destroy") is not True:
        opened.append(
            "has force_destroy on: deleting it, by a later plan or by mistake, first deletes "
            "every object and version in it"
        )
    suspended = values.after.get("versioning") and not _versioned(values.after)
    if _versioned(values.before) and suspended:
        opened.append("has versioning suspended: an overwritten or deleted object is gone at once")
    return opened


def _bucket_lost(change: Change, values: Values, name: str) -> tuple[Danger, str]:
    why = f" because {change.because}" if change.action is Action.REPLACE and change.because else ""
    if not _versioned(values.before):
        return Danger.DOWNTIME, (
            f"bucket {name} {_past(change)}{why}: whatever reads from it fails until it exists "
            "again (it is not versioned, so nothing here says it holds backups)"
        )
    forced = (
        "force_destroy is on, so every object and every old version goes with it"
        if values.before.get("force_destroy") is True
        else "without force_destroy the apply fails at the delete while the bucket holds objects"
    )
    return Danger.DATA_LOSS, (
        f"bucket {name} {_past(change)}{why}: it is versioned, so it holds history no apply can "
        f"recreate (the backup bucket holds the only off-box copy of Headscale's database and "
        f"keys); {forced}"
    )


def _versioned(values: Mapping[str, Any]) -> bool:
    blocks = values.get("versioning")
    blocks = [blocks] if isinstance(blocks, dict) else blocks  # one block, as cdk.tf.json has it
    return isinstance(blocks, list) and any(
        isinstance(block, dict) and block.get("enabled") is True for block in blocks
    )


def _spaces_key(change: Change, values: Values, volume_lost: bool) -> tuple[Danger, str]:
    name = values.before.get("name") or values.after.get("name") or change.address
    reach = (
        "whoever holds its secret (the edge, and anyone who can read the Terraform state) "
        "gets that reach too"
    )
    if change.action is Action.CREATE:
        if account_wide(values.after.get("grant")):
            return Danger.EXPOSURE, (
                f"Spaces key {name} created with full access to every bucket of the account; "
                + reach
            )
        return safe(change, values, volume_lost)
    if change.action in (Action.UPDATE, Action.REPLACE):
        if has_true(values.unknown.get("grant")):
            return Danger.EXPOSURE, (
                f"Spaces key {name}: its grants are known only after apply, so this plan cannot "
                "show that they do not widen; review the configuration change behind it"
            )
        widened = widened_grants(values.before.get("grant"), values.after.get("grant"))
        if widened:
            return Danger.EXPOSURE, f"Spaces key {name} now reaches {'; '.join(widened)}; {reach}"
    if change.action is Action.DELETE:
        return Danger.DOWNTIME, (
            f"Spaces key {name} deleted: whatever uses it (the edge's backups, for its key) is "
            "refused from then on"
        )
    if change.action is Action.REPLACE:
        return Danger.DOWNTIME, (
            f"Spaces key {name} replaced: a new secret, and whatever holds the old one is refused "
            "until it gets the new one (the edge gets it in user_data, which replaces the droplet)"
        )
    return safe(change, values, volume_lost)


def _bucket_object(change: Change, values: Values, volume_lost: bool) -> tuple[Danger, str]:
    """Any object: an ACL opened is exposure, a delete downtime. The edge's config object's
    updates are its own class, in place, naming the sites they change."""
    where = values.before or values.after
    what = f"object {where.get('key') or change.address} in bucket {where.get('bucket') or '?'}"
    if change.action in (Action.CREATE, Action.UPDATE, Action.REPLACE):
        if values.unknown.get("acl") and change.action is not Action.CREATE:
            return Danger.EXPOSURE, f"{what} gets an ACL known only after apply"
        if acl := acl_opened(values.before, values.after):
            return Danger.EXPOSURE, (
                f"{what} made {acl}: it is no longer private; anyone with its URL can download it"
            )
    before = edge_config(values.before.get("content"))
    after = edge_config(values.after.get("content"))
    if change.action is Action.UPDATE and before is not None and after not in (None, before):
        assert after is not None
        opened = policy_exposures(before["sites"], after["sites"])
        if added := scrapers_added(before, after):
            opened.append(
                f"{join(added)} may now scrape the edge's metrics on its tailnet address (the "
                "ACL opens the port to them): sites, traffic, versions and paths become readable "
                "there"
            )
        if opened:
            return Danger.EXPOSURE, f"{'; '.join(opened)} ({describe(before, after)})"
        if opened_ports(before, after):
            # The port reaches a homelab machine from the whole internet: exposure, not
            # just a change, though the running edge takes it without downtime.
            return Danger.EXPOSURE, describe(before, after)
        return Danger.IN_PLACE, describe(before, after)
    if change.action is Action.UPDATE and after is not None:
        return Danger.IN_PLACE, (
            f"config {after.get('version', '?')}: its webhook or MAC changed (the health "
            "webhook, or the edge secret); applied by the running edge with no downtime"
        )
    if change.action is Action.CREATE and after is not None:
        return Danger.SAFE, (
            f"config {after.get('version', '?')} written to the config bucket: the edge reads "
            "its sites and settings from it, and later changes reach it in place"
        )
    if change.action in (Action.DELETE, Action.REPLACE):
        why = f" because {change.because}" if change.because else ""
        return Danger.DOWNTIME, (
            f"{what} {_past(change)}{why}: whatever reads it finds nothing until it is "
            "written again"
        )
    return safe(change, values, volume_lost)


def _bucket_policy(change: Change, values: Values, volume_lost: bool) -> tuple[Danger, str]:
    bucket = values.before.get("bucket") or values.after.get("bucket") or change.address
    if change.action is Action.DELETE:
        if denies(values.before.get("policy")):
            return Danger.EXPOSURE, (
                f"policy of bucket {bucket} deleted: the Deny statements in it no longer apply"
            )
        return Danger.DOWNTIME, (
            f"policy of bucket {bucket} deleted: whoever it let in is refused from then on"
        )
    if change.action not in (Action.CREATE, Action.UPDATE, Action.REPLACE):
        return safe(change, values, volume_lost)
    after = None if values.unknown.get("policy") else public_statements(values.after.get("policy"))
    if after is None:
        return Danger.EXPOSURE, (
            f"policy of bucket {bucket} cannot be read from the plan (unknown or not JSON), "
            "so this plan cannot show that it does not let anyone in"
        )
    before = public_statements(values.before.get("policy")) or set()
    if opened := sorted(after - before):
        return Danger.EXPOSURE, f"policy of bucket {bucket} lets anyone: {'; '.join(opened)}"
    return safe(change, values, volume_lost)


RULES: dict[str, _Rule] = {
    "digitalocean_droplet": _droplet,
    "digitalocean_volume": _volume,
    "digitalocean_domain": _zone,
    "digitalocean_reserved_ip": _reserved_address,
    "digitalocean_reserved_ipv6": _reserved_address,
    "digitalocean_reserved_ip_assignment": _assignment,
    "digitalocean_reserved_ipv6_assignment": _assignment,
    "digitalocean_record": _record,
    "digitalocean_firewall": _firewall,
    "digitalocean_monitor_alert": _alert,
    "digitalocean_project": _project,
    "digitalocean_spaces_bucket": _bucket,
    "digitalocean_spaces_key": _spaces_key,
    "digitalocean_spaces_bucket_object": _bucket_object,
    "digitalocean_spaces_bucket_policy": _bucket_policy,
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
