"""Plan classification: every recorded plan, then each rule on a hand-made change."""

from __future__ import annotations

import json
from typing import Any

import pytest
from support.plans import (
    DROPLET,
    NONE,
    RECORDED,
    change,
    classes_of,
    counts_of,
    plan,
    recorded,
    summary_of,
)

from homelab_tunnel.errors import InputError
from homelab_tunnel.plan.classify import parse_plan, summarize, summarize_text
from homelab_tunnel.plan.model import Danger

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
    summary = summary_of(recorded("create"))
    assert counts_of(summary) == {**NONE, "create": 8}
    assert summary.verdict is Danger.SAFE
    assert {danger for _, danger in classes_of(summary).values()} == {Danger.SAFE}
    assert summary.warnings == []


def test_noop_plan_has_no_changes_and_no_verdict() -> None:
    summary = summary_of(recorded("noop"))
    assert counts_of(summary) == NONE
    assert summary.changes == ()
    assert summary.verdict is None
    assert not summary.reaches(Danger.DOWNTIME)


def test_user_data_change_replaces_droplet_and_moves_the_reserved_ip() -> None:
    summary = summary_of(recorded("user-data-change"))
    assert counts_of(summary) == {**NONE, "update": 1, "replace": 2}
    assert classes_of(summary) == {
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
    droplet = summary_of(recorded("user-data-change")).warnings[0]
    assert droplet.consequence == (
        "droplet replaced because user_data changed: the sites are down until the new "
        "droplet boots (~3-5 min); state survives on the volume"
    )


def test_reserved_ip_assignment_replacement_is_downtime_not_an_address_change() -> None:
    summary = summary_of(recorded("user-data-change"))
    assignment = next(c for c in summary.changes if "assignment" in c.address)
    assert assignment.danger is Danger.DOWNTIME
    assert assignment.replace_paths == ("droplet_id",)
    assert "203.0.113.10 moves to the new droplet" in assignment.consequence
    assert "the address and DNS stay the same" in assignment.consequence


def test_firewall_rule_removal_is_an_in_place_update() -> None:
    summary = summary_of(recorded("firewall-in-place"))
    assert counts_of(summary) == {**NONE, "update": 1}
    assert classes_of(summary) == {"digitalocean_firewall.edge": ("update", Danger.SAFE)}


def test_removed_volume_is_data_loss() -> None:
    summary = summary_of(recorded("volume-removed"))
    assert counts_of(summary) == {**NONE, "delete": 1}
    assert classes_of(summary) == {"digitalocean_volume.state": ("delete", Danger.DATA_LOSS)}
    (volume,) = summary.warnings
    assert volume.action_reason == "delete_because_no_resource_config"
    assert volume.because == "it is no longer in the configuration"
    assert volume.consequence.startswith("volume edge-state deleted: Headscale's database")


def test_removed_site_deletes_its_record_as_an_address_change() -> None:
    summary = summary_of(recorded("site-removed"))
    assert counts_of(summary) == {**NONE, "delete": 1}
    assert classes_of(summary) == {"digitalocean_record.app": ("delete", Danger.ADDRESS_CHANGE)}
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
    assert summary_of(recorded(name)).verdict is verdict


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


# ---------------------------------------------------------------------------
# A Headscale version change, named (the droplet's user_data is only a hash)
# ---------------------------------------------------------------------------


def _with_version(before: str | None, after: str) -> dict[str, Any]:
    document = recorded("user-data-change")
    document["output_changes"] = {
        "headscale_version": {"actions": ["update"], "before": before, "after": after}
    }
    return document


def test_a_headscale_upgrade_is_named() -> None:
    summary = summary_of(_with_version("0.28.1", "0.29.2"))
    assert summary.upgrade == "Headscale 0.28.1 → 0.29.2 (the edge copies the database first)"
    assert summary.findings()[0].line() == (
        "warning: upgrade: Headscale 0.28.1 → 0.29.2 (the edge copies the database first)"
    )
    assert summary.snapshot_first


def test_an_upgrade_the_edge_will_refuse_says_so() -> None:
    summary = summary_of(_with_version("0.27.1", "0.29.2"))
    assert summary.upgrade is not None
    assert summary.upgrade.startswith("Headscale 0.27.1 → 0.29.2 will be refused on the edge:")
    assert "skips 1 minor release(s)" in summary.upgrade


@pytest.mark.parametrize(("before", "after"), [(None, "0.29.2"), ("0.29.2", "0.29.2")])
def test_a_first_apply_or_the_same_version_is_no_upgrade(before: str | None, after: str) -> None:
    summary = summary_of(_with_version(before, after))
    assert summary.upgrade is None


def test_an_in_place_firewall_change_needs_no_snapshot() -> None:
    assert not summary_of(recorded("firewall-in-place")).snapshot_first
    assert summary_of(recorded("user-data-change")).snapshot_first
