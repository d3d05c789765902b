"""Plan classification: every recorded plan, then each rule on a hand-made change."""

from __future__ import annotations

import json
from typing import Any

import pytest
from plans import RECORDED, change, plan, recorded

from homelab_tunnel.errors import InputError
from homelab_tunnel.plan_summary import (
    Action,
    Danger,
    PlanSummary,
    parse_plan,
    summarize,
    summarize_text,
)

NONE = {"create": 0, "update": 0, "replace": 0, "delete": 0, "forget": 0}


def _summary(document: dict[str, Any]) -> PlanSummary:
    return summarize(document, "plan.json")


def _counts(summary: PlanSummary) -> dict[str, int]:
    return {action.value: count for action, count in summary.counts.items()}


def _classes(summary: PlanSummary) -> dict[str, tuple[str, Danger]]:
    return {c.address: (c.action.value, c.danger) for c in summary.changes}


# ---------------------------------------------------------------------------
# The recorded plans (Terraform 1.11.4, DigitalOcean provider 2.71.0)
# ---------------------------------------------------------------------------


def test_all_six_recorded_plans_are_here() -> None:
    assert RECORDED == [
        "create",
        "firewall-in-place",
        "noop",
        "site-removed",
        "user-data-change",
        "volume-removed",
    ]


def test_first_apply_creates_everything_safely() -> None:
    summary = _summary(recorded("create"))
    assert _counts(summary) == {**NONE, "create": 8}
    assert summary.verdict is Danger.SAFE
    assert {danger for _, danger in _classes(summary).values()} == {Danger.SAFE}
    assert summary.warnings == []


def test_noop_plan_has_no_changes_and_no_verdict() -> None:
    summary = _summary(recorded("noop"))
    assert _counts(summary) == NONE
    assert summary.changes == ()
    assert summary.verdict is None
    assert not summary.reaches(Danger.DOWNTIME)


def test_user_data_change_replaces_droplet_and_moves_the_reserved_ip() -> None:
    summary = _summary(recorded("user-data-change"))
    assert _counts(summary) == {**NONE, "update": 1, "replace": 2}
    assert _classes(summary) == {
        "digitalocean_droplet.edge": ("replace", Danger.DOWNTIME),
        "digitalocean_reserved_ip_assignment.edge": ("replace", Danger.DOWNTIME),
        "digitalocean_firewall.edge": ("update", Danger.SAFE),
    }
    droplet = summary.changes[0]
    assert droplet.address == "digitalocean_droplet.edge"
    assert droplet.replace_paths == ("user_data",)
    assert droplet.action_reason == "replace_because_cannot_update"
    assert summary.verdict is Danger.DOWNTIME


def test_droplet_replacement_warns_of_downtime_and_keeps_state() -> None:
    droplet = _summary(recorded("user-data-change")).warnings[0]
    assert droplet.consequence == (
        "droplet replaced because user_data changed: the sites are down until the new "
        "droplet boots (~3-5 min); state survives on the volume"
    )


def test_reserved_ip_assignment_replacement_is_downtime_not_an_address_change() -> None:
    summary = _summary(recorded("user-data-change"))
    assignment = next(c for c in summary.changes if "assignment" in c.address)
    assert assignment.danger is Danger.DOWNTIME
    assert assignment.replace_paths == ("droplet_id",)
    assert "203.0.113.10 moves to the new droplet" in assignment.consequence
    assert "the address and DNS stay the same" in assignment.consequence


def test_firewall_rule_removal_is_an_in_place_update() -> None:
    summary = _summary(recorded("firewall-in-place"))
    assert _counts(summary) == {**NONE, "update": 1}
    assert _classes(summary) == {"digitalocean_firewall.edge": ("update", Danger.SAFE)}


def test_removed_volume_is_data_loss() -> None:
    summary = _summary(recorded("volume-removed"))
    assert _counts(summary) == {**NONE, "delete": 1}
    assert _classes(summary) == {"digitalocean_volume.state": ("delete", Danger.DATA_LOSS)}
    (volume,) = summary.warnings
    assert volume.action_reason == "delete_because_no_resource_config"
    assert volume.because == "it is no longer in the configuration"
    assert volume.consequence.startswith("volume edge-state deleted: Headscale's database")


def test_removed_site_deletes_its_record_as_an_address_change() -> None:
    summary = _summary(recorded("site-removed"))
    assert _counts(summary) == {**NONE, "delete": 1}
    assert _classes(summary) == {"digitalocean_record.app": ("delete", Danger.ADDRESS_CHANGE)}
    assert summary.warnings[0].consequence == (
        "DNS record app.example.com (A) deleted: the name stops resolving to the edge"
    )


@pytest.mark.parametrize(
    ("name", "verdict"),
    [
        ("create", Danger.SAFE),
        ("firewall-in-place", Danger.SAFE),
        ("noop", None),
        ("site-removed", Danger.ADDRESS_CHANGE),
        ("user-data-change", Danger.DOWNTIME),
        ("volume-removed", Danger.DATA_LOSS),
    ],
)
def test_verdict_of_each_recorded_plan(name: str, verdict: Danger | None) -> None:
    assert _summary(recorded(name)).verdict is verdict


# ---------------------------------------------------------------------------
# Rules, one hand-made change each
# ---------------------------------------------------------------------------

DROPLET = {"name": "edge", "size": "s-1vcpu-1gb", "user_data": "abc"}
RESERVED = {"ip_address": "203.0.113.10", "region": "fra1"}
A_RECORD = {"domain": "example.com", "name": "blog", "type": "A", "value": "203.0.113.10"}


def test_replaced_reserved_ip_is_an_address_change() -> None:
    summary = _summary(
        plan(
            change(
                "digitalocean_reserved_ip.edge",
                ["delete", "create"],
                before=RESERVED,
                after={"region": "ams3"},
                replace_paths=[["region"]],
            )
        )
    )
    (ip,) = summary.changes
    assert (ip.action, ip.danger) == (Action.REPLACE, Danger.ADDRESS_CHANGE)
    assert ip.consequence.startswith(
        "reserved IP 203.0.113.10 replaced because region changed: the edge gets a new"
    )


def test_deleted_reserved_ipv6_is_an_address_change() -> None:
    summary = _summary(
        plan(change("digitalocean_reserved_ipv6.edge", ["delete"], before={"ip": "2001:db8::1"}))
    )
    assert summary.verdict is Danger.ADDRESS_CHANGE
    assert "2001:db8::1 released" in summary.changes[0].consequence


def test_created_before_destroyed_counts_as_a_replacement() -> None:
    summary = _summary(
        plan(change("digitalocean_droplet.edge", ["create", "delete"], before=DROPLET))
    )
    assert _counts(summary) == {**NONE, "replace": 1}
    assert summary.verdict is Danger.DOWNTIME


def test_resizing_the_droplet_in_place_is_downtime() -> None:
    summary = _summary(
        plan(
            change(
                "digitalocean_droplet.edge",
                ["update"],
                before=DROPLET,
                after={**DROPLET, "size": "s-1vcpu-2gb"},
            )
        )
    )
    assert summary.verdict is Danger.DOWNTIME
    assert "powers it off" in summary.changes[0].consequence


def test_retagging_the_droplet_is_safe() -> None:
    summary = _summary(
        plan(
            change(
                "digitalocean_droplet.edge",
                ["update"],
                before={**DROPLET, "tags": ["a"]},
                after={**DROPLET, "tags": ["b"]},
            )
        )
    )
    assert summary.verdict is Danger.SAFE


def test_deleted_droplet_is_downtime() -> None:
    summary = _summary(plan(change("digitalocean_droplet.edge", ["delete"], before=DROPLET)))
    assert summary.verdict is Danger.DOWNTIME
    assert summary.changes[0].consequence.startswith("droplet deleted: the sites are down")


def test_droplet_warning_does_not_promise_state_when_the_volume_goes_too() -> None:
    summary = _summary(
        plan(
            change(
                "digitalocean_droplet.edge",
                ["delete", "create"],
                before=DROPLET,
                replace_paths=[["user_data"]],
            ),
            change("digitalocean_volume.state", ["delete"], before={"name": "edge-state"}),
        )
    )
    droplet = next(c for c in summary.changes if c.resource_type == "digitalocean_droplet")
    assert "state survives" not in droplet.consequence
    assert "state volume is lost in this same plan" in droplet.consequence


def test_replaced_volume_is_data_loss() -> None:
    summary = _summary(
        plan(
            change(
                "digitalocean_volume.state",
                ["delete", "create"],
                before={"name": "edge-state", "size": 10},
                after={"name": "edge-state", "size": 5},
                replace_paths=[["size"]],
            )
        )
    )
    assert summary.verdict is Danger.DATA_LOSS
    assert "replaced because size changed: the new volume is empty" in (
        summary.changes[0].consequence
    )


def test_growing_the_volume_in_place_is_safe() -> None:
    summary = _summary(
        plan(
            change(
                "digitalocean_volume.state",
                ["update"],
                before={"name": "edge-state", "size": 5},
                after={"name": "edge-state", "size": 10},
            )
        )
    )
    assert summary.verdict is Danger.SAFE


def test_deleted_zone_is_data_loss_for_every_record_in_it() -> None:
    summary = _summary(
        plan(change("digitalocean_domain.zone", ["delete"], before={"name": "example.com"}))
    )
    assert summary.verdict is Danger.DATA_LOSS
    assert "records this stack does not manage" in summary.changes[0].consequence


def test_record_pointed_elsewhere_is_an_address_change() -> None:
    summary = _summary(
        plan(
            change(
                "digitalocean_record.a_blog",
                ["update"],
                before=A_RECORD,
                after=A_RECORD | {"value": None},
                after_unknown={"value": True},
            )
        )
    )
    assert summary.verdict is Danger.ADDRESS_CHANGE
    assert "now points to a value known after apply" in summary.changes[0].consequence


def test_record_ttl_change_is_safe() -> None:
    summary = _summary(
        plan(
            change(
                "digitalocean_record.a_blog",
                ["update"],
                before=A_RECORD | {"ttl": 300},
                after=A_RECORD | {"ttl": 60},
            )
        )
    )
    assert summary.verdict is Danger.SAFE


def test_replaced_record_is_an_address_change() -> None:
    summary = _summary(
        plan(
            change(
                "digitalocean_record.a_blog",
                ["delete", "create"],
                before=A_RECORD,
                after=A_RECORD | {"type": "AAAA"},
                replace_paths=[["type"]],
            )
        )
    )
    assert summary.verdict is Danger.ADDRESS_CHANGE
    assert summary.changes[0].because == "type changed"


def test_deleted_reserved_ip_assignment_is_downtime() -> None:
    summary = _summary(
        plan(change("digitalocean_reserved_ip_assignment.edge", ["delete"], before=RESERVED))
    )
    assert summary.verdict is Danger.DOWNTIME
    assert "taken off the droplet" in summary.changes[0].consequence


def test_deleting_an_alert_is_safe() -> None:
    summary = _summary(plan(change("digitalocean_monitor_alert.cpu", ["delete"], before={})))
    assert _counts(summary) == {**NONE, "delete": 1}
    assert summary.verdict is Danger.SAFE


def test_forgotten_resource_is_counted_but_safe() -> None:
    summary = _summary(plan(change("digitalocean_volume.state", ["forget"], before={})))
    assert _counts(summary) == {**NONE, "forget": 1}
    assert summary.verdict is Danger.SAFE
    assert "the real resource is left alone" in summary.changes[0].consequence


def test_data_source_reads_are_not_changes() -> None:
    read = change("digitalocean_domain.zone", ["read"], after={"name": "example.com"})
    read["mode"] = "data"
    read["address"] = "data.digitalocean_domain.zone"
    assert _summary(plan(read)).changes == ()


def test_changes_are_ordered_worst_first() -> None:
    summary = _summary(
        plan(
            change("digitalocean_firewall.edge", ["update"], before={}, after={}),
            change("digitalocean_droplet.edge", ["delete"], before=DROPLET),
            change("digitalocean_record.a_blog", ["delete"], before=A_RECORD),
            change("digitalocean_volume.state", ["delete"], before={"name": "edge-state"}),
        )
    )
    assert [c.danger for c in summary.changes] == [
        Danger.DATA_LOSS,
        Danger.ADDRESS_CHANGE,
        Danger.DOWNTIME,
        Danger.SAFE,
    ]


def test_nested_replace_paths_read_like_attribute_paths() -> None:
    summary = _summary(
        plan(
            change(
                "digitalocean_droplet.edge",
                ["delete", "create"],
                before=DROPLET,
                replace_paths=[["image"], ["backup_policy", 0, "plan"]],
            )
        )
    )
    (droplet,) = summary.changes
    assert droplet.replace_paths == ("image", "backup_policy[0].plan")
    assert droplet.because == "image and backup_policy[0].plan changed"


def test_tainted_replacement_says_why() -> None:
    summary = _summary(
        plan(
            change(
                "digitalocean_droplet.edge",
                ["delete", "create"],
                before=DROPLET,
                action_reason="replace_because_tainted",
            )
        )
    )
    assert summary.changes[0].because == "it is tainted (an earlier apply failed part-way)"
    assert "because it is tainted" in summary.changes[0].consequence


def test_deposed_object_is_named_as_such() -> None:
    summary = _summary(
        plan(change("digitalocean_droplet.edge", ["delete"], before=DROPLET, deposed="00000001"))
    )
    assert summary.changes[0].address == "digitalocean_droplet.edge (deposed object 00000001)"


@pytest.mark.parametrize(
    ("verdict", "threshold", "reached"),
    [
        (Danger.DATA_LOSS, Danger.DATA_LOSS, True),
        (Danger.DATA_LOSS, Danger.DOWNTIME, True),
        (Danger.ADDRESS_CHANGE, Danger.DATA_LOSS, False),
        (Danger.ADDRESS_CHANGE, Danger.ADDRESS_CHANGE, True),
        (Danger.DOWNTIME, Danger.ADDRESS_CHANGE, False),
        (Danger.SAFE, Danger.DOWNTIME, False),
    ],
)
def test_threshold_is_reached_by_that_class_or_worse(
    verdict: Danger, threshold: Danger, reached: bool
) -> None:
    samples = {
        Danger.DATA_LOSS: change("digitalocean_volume.state", ["delete"], before={}),
        Danger.ADDRESS_CHANGE: change("digitalocean_record.a_blog", ["delete"], before=A_RECORD),
        Danger.DOWNTIME: change("digitalocean_droplet.edge", ["delete"], before=DROPLET),
        Danger.SAFE: change("digitalocean_firewall.edge", ["create"], after={}),
    }
    summary = _summary(plan(samples[verdict]))
    assert summary.verdict is verdict
    assert summary.reaches(threshold) is reached


def test_errored_plan_is_never_judged_safe() -> None:
    summary = _summary(plan(errored=True))
    assert summary.verdict is None
    assert summary.reaches(Danger.DATA_LOSS)
    assert any("errored" in note for note in summary.notes)


def test_incomplete_plan_says_another_will_follow() -> None:
    summary = _summary(plan(complete=False))
    assert summary.notes == (
        "the plan is incomplete (deferred changes or -target): another plan will follow",
    )


# ---------------------------------------------------------------------------
# Input that is not a plan: named, with what is expected instead
# ---------------------------------------------------------------------------


def _problem(text: str) -> str:
    with pytest.raises(InputError) as caught:
        summarize_text(text, "in.json")
    assert caught.value.source == "in.json"
    (problem,) = caught.value.problems
    assert problem.endswith("expected the output of `terraform show -json PLANFILE`")
    return problem


def test_malformed_json_names_the_position() -> None:
    assert _problem('{"format_version": "1.2",\n  oops}').startswith(
        "not valid JSON (Expecting property name enclosed in double quotes at line 2 column 3)"
    )


def test_state_from_terraform_show_is_not_a_plan() -> None:
    state = recorded("noop")["prior_state"]
    assert _problem(json.dumps(state)).startswith(
        "this is state (`terraform show -json` without a plan file), not a plan"
    )


def test_raw_state_file_is_not_a_plan() -> None:
    state = {"version": 4, "terraform_version": "1.11.4", "serial": 3, "lineage": "x"}
    assert _problem(json.dumps(state)).startswith("this is a Terraform state file, not a plan")


def test_synthesized_configuration_is_not_a_plan(stack: dict[str, Any]) -> None:
    assert _problem(json.dumps(stack)).startswith(
        "this is Terraform configuration (cdk.tf.json), not a plan"
    )


def test_unsupported_format_version_is_refused() -> None:
    document = recorded("create") | {"format_version": "2.0"}
    assert _problem(json.dumps(document)).startswith(
        "format_version '2.0' is not supported (this tool reads format 1.x"
    )


def test_json_without_format_version_is_not_terraform_output() -> None:
    assert _problem('{"resource_changes": []}').startswith("no format_version")


def test_json_list_is_not_a_plan() -> None:
    assert _problem("[]").startswith("a JSON list is not a plan")


def test_unknown_action_is_refused_rather_than_guessed() -> None:
    document = plan(change("digitalocean_droplet.edge", ["explode"], before=DROPLET))
    with pytest.raises(InputError) as caught:
        summarize(parse_plan(json.dumps(document), "in.json"), "in.json")
    assert caught.value.problems[0].startswith(
        'resource_changes[0].change.actions: ["explode"] is unknown'
    )


def test_entry_without_actions_is_named() -> None:
    document = plan({"address": "x.y", "type": "x", "change": {}})
    with pytest.raises(InputError) as caught:
        summarize(document, "in.json")
    assert caught.value.problems == [
        "resource_changes[0].change.actions: expected a list of action names"
    ]
