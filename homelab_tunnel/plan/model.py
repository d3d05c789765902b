"""A plan as the rest of the tool sees it: each change, its danger class and why.

Danger classes, worst first:

- data loss: the state volume (or the DNS zone with every record in it) is
  deleted or replaced, or a versioned Spaces bucket (the backups) is;
- address change: a reserved IP is released or replaced, a DNS record is
  deleted, replaced or pointed elsewhere;
- exposure: the droplet becomes reachable by more of the internet: the
  firewall is deleted or replaced, the droplet leaves it, or an inbound rule
  opens a port or widens its sources (SSH above all); or the backups become
  easier to read or destroy: a bucket or object stops being private, a
  bucket policy lets anyone in, force_destroy is turned on, versioning is
  suspended, a Spaces key reaches more buckets or gets more permission;
- downtime: the droplet is replaced, deleted or resized, or the reserved IP
  is taken off it (the address itself survives, the service does not); and
  any other delete or replacement, which nothing here knows to be harmless;
- in place: the edge's config object changes; the running edge applies it
  without downtime (sites added, removed or changed are named);
- safe: everything else (creations, in-place updates).

Exposure ranks above downtime (a hole is worse than a pause, and it does not
show: the sites keep working) and below address change (the next apply closes
it; a released reserved IP never comes back).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum, StrEnum

from homelab_tunnel.edge.versions import upgrade_problem
from homelab_tunnel.findings import Finding, note, warning


class Danger(IntEnum):
    """How bad a change is; higher is worse, so `max()` gives the verdict."""

    SAFE = 0
    IN_PLACE = 1
    DOWNTIME = 2
    EXPOSURE = 3
    ADDRESS_CHANGE = 4
    DATA_LOSS = 5

    @property
    def label(self) -> str:
        if self is Danger.IN_PLACE:
            return "in place (no downtime)"
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
ACTIONS: dict[tuple[str, ...], Action | None] = {
    ("no-op",): None,
    ("read",): None,
    ("create",): Action.CREATE,
    ("update",): Action.UPDATE,
    ("delete", "create"): Action.REPLACE,
    ("create", "delete"): Action.REPLACE,
    ("delete",): Action.DELETE,
    ("forget",): Action.FORGET,
}

REASONS = {
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
            return f"{join(self.replace_paths)} changed"
        if self.action_reason:
            return REASONS.get(self.action_reason, self.action_reason)
        return None


@dataclass(frozen=True)
class PlanSummary:
    source: str
    terraform_version: str
    changes: tuple[Change, ...]
    notes: tuple[str, ...]
    errored: bool
    # (before, after) of the headscale_version output when the plan changes it.
    headscale_change: tuple[str, str] | None = None

    @property
    def upgrade(self) -> str | None:
        """`Headscale 0.28.1 → 0.29.2`, and whether the edge will refuse it."""
        if self.headscale_change is None:
            return None
        before, after = self.headscale_change
        line = f"Headscale {before} → {after}"
        try:
            refused = upgrade_problem(before, after)
        except ValueError:
            return line
        if refused:
            return f"{line} will be refused on the edge: {refused}"
        return f"{line} (the edge copies the database first)"

    @property
    def snapshot_first(self) -> bool:
        """Whether the volume should be snapshotted before applying: its state is at stake."""
        touched = {"digitalocean_droplet", "digitalocean_volume"}
        return self.headscale_change is not None or any(
            change.resource_type in touched and change.action in (Action.REPLACE, Action.DELETE)
            for change in self.changes
        )

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

    def refusal(self, threshold: Danger) -> str | None:
        """The line a gate prints when it stops this plan at `threshold`, or None if it passes."""
        if not self.reaches(threshold):
            return None
        label = self.verdict_label  # "an exposure change", "an address change"
        noun = label if label.endswith("change") else f"{label} change"
        article = "an" if label[:1] in ("a", "e", "i", "o", "u") else "a"
        found = "an errored plan" if self.errored else f"{article} {noun}"
        return f"{self.source}: refusing {found} (--fail-on {threshold.option})"

    @property
    def warnings(self) -> list[Change]:
        return [change for change in self.changes if change.danger > Danger.SAFE]

    def findings(self) -> list[Finding]:
        """What will happen, as findings: one warning per dangerous change, then the notes."""
        found = [
            (note if change.danger is Danger.IN_PLACE else warning)(
                change.address, f"{change.danger.label}: {change.consequence}"
            )
            for change in self.warnings
        ]
        if self.upgrade:
            found.insert(0, warning("upgrade", self.upgrade))
        return found + [note("", text) for text in self.notes]


def join(items: Sequence[str]) -> str:
    """`a`, `a and b`, `a, b and c`."""
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]
