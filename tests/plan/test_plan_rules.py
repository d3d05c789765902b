"""Each danger rule, on one hand-made change: what it flags and what it leaves safe."""

from __future__ import annotations

import pytest
from support.plans import DROPLET, NONE, change, counts_of, plan, summary_of

from homelab_tunnel.plan.model import Action, Danger

RESERVED = {"ip_address": "203.0.113.10", "region": "fra1"}
A_RECORD = {"domain": "example.com", "name": "blog", "type": "A", "value": "203.0.113.10"}


def test_replaced_reserved_ip_is_an_address_change() -> None:
    summary = summary_of(
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
    summary = summary_of(
        plan(change("digitalocean_reserved_ipv6.edge", ["delete"], before={"ip": "2001:db8::1"}))
    )
    assert summary.verdict is Danger.ADDRESS_CHANGE
    assert "2001:db8::1 released" in summary.changes[0].consequence


def test_created_before_destroyed_counts_as_a_replacement() -> None:
    summary = summary_of(
        plan(change("digitalocean_droplet.edge", ["create", "delete"], before=DROPLET))
    )
    assert counts_of(summary) == {**NONE, "replace": 1}
    assert summary.verdict is Danger.DOWNTIME


def test_resizing_the_droplet_in_place_is_downtime() -> None:
    summary = summary_of(
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
    summary = summary_of(
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
    summary = summary_of(plan(change("digitalocean_droplet.edge", ["delete"], before=DROPLET)))
    assert summary.verdict is Danger.DOWNTIME
    assert summary.changes[0].consequence.startswith("droplet deleted: the sites are down")


def test_droplet_warning_does_not_promise_state_when_the_volume_goes_too() -> None:
    summary = summary_of(
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
    summary = summary_of(
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
    summary = summary_of(
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
    summary = summary_of(
        plan(change("digitalocean_domain.zone", ["delete"], before={"name": "example.com"}))
    )
    assert summary.verdict is Danger.DATA_LOSS
    assert "records this stack does not manage" in summary.changes[0].consequence


def test_record_pointed_elsewhere_is_an_address_change() -> None:
    summary = summary_of(
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
    summary = summary_of(
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
    summary = summary_of(
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
    summary = summary_of(
        plan(change("digitalocean_reserved_ip_assignment.edge", ["delete"], before=RESERVED))
    )
    assert summary.verdict is Danger.DOWNTIME
    assert "taken off the droplet" in summary.changes[0].consequence


def test_deleting_an_alert_is_downtime() -> None:
    summary = summary_of(plan(change("digitalocean_monitor_alert.cpu", ["delete"], before={})))
    assert counts_of(summary) == {**NONE, "delete": 1}
    assert summary.verdict is Danger.DOWNTIME
    assert "nobody is told when the edge runs out of CPU" in summary.changes[0].consequence


def test_forgotten_resource_is_counted_but_safe() -> None:
    summary = summary_of(plan(change("digitalocean_volume.state", ["forget"], before={})))
    assert counts_of(summary) == {**NONE, "forget": 1}
    assert summary.verdict is Danger.SAFE
    assert "the real resource is left alone" in summary.changes[0].consequence


def test_data_source_reads_are_not_changes() -> None:
    read = change("digitalocean_domain.zone", ["read"], after={"name": "example.com"})
    read["mode"] = "data"
    read["address"] = "data.digitalocean_domain.zone"
    assert summary_of(plan(read)).changes == ()


def test_changes_are_ordered_worst_first() -> None:
    summary = summary_of(
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
    summary = summary_of(
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
    summary = summary_of(
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
    summary = summary_of(
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
    summary = summary_of(plan(samples[verdict]))
    assert summary.verdict is verdict
    assert summary.reaches(threshold) is reached


def test_errored_plan_is_never_judged_safe() -> None:
    summary = summary_of(plan(errored=True))
    assert summary.verdict is None
    assert summary.reaches(Danger.DATA_LOSS)
    assert any("errored" in note for note in summary.notes)


def test_incomplete_plan_says_another_will_follow() -> None:
    summary = summary_of(plan(complete=False))
    assert summary.notes == (
        "the plan is incomplete (deferred changes or -target): another plan will follow",
    )
