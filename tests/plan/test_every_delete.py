"""Every delete is classified, exposure has its own class, and an errored plan never reads as fine."""

from __future__ import annotations

from typing import Any

import pytest
from support.plans import change, plan, summary_of
from typer.testing import CliRunner

from homelab_tunnel.cli import app
from homelab_tunnel.plan.model import Danger
from homelab_tunnel.plan.report import render

runner = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1"})


def _types(*stacks: dict[str, Any]) -> list[str]:
    return sorted({kind for stack in stacks for kind in stack["resource"]})


# ---------------------------------------------------------------------------
# Every delete or replacement is at least downtime
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def managed_types(stack: dict[str, Any], full_stack: dict[str, Any]) -> list[str]:
    """Every resource type the stack manages, in any config shape, plus one it never did."""
    return [*_types(stack, full_stack), "digitalocean_spaces_bucket_cors_configuration"]


@pytest.mark.parametrize("actions", [["delete"], ["delete", "create"], ["create", "delete"]])
def test_no_delete_or_replacement_is_safe(managed_types: list[str], actions: list[str]) -> None:
    assert "digitalocean_firewall" in managed_types
    for kind in managed_types:
        summary = summary_of(plan(change(f"{kind}.x", actions, before={"name": "x"})))
        (only,) = summary.changes
        assert only.danger >= Danger.DOWNTIME, kind
        assert not render(summary, "text").splitlines()[1].startswith("verdict: safe")


def test_an_unknown_type_is_downtime_and_says_why() -> None:
    kind = "digitalocean_spaces_bucket_cors_configuration"
    summary = summary_of(plan(change(f"{kind}.x", ["delete"], before={})))
    assert summary.verdict is Danger.DOWNTIME
    assert f"has no rule for {kind}" in summary.changes[0].consequence


def test_negative_twin_creations_and_updates_of_unknown_types_stay_safe() -> None:
    for actions in (["create"], ["update"]):
        kind = "digitalocean_spaces_bucket_cors_configuration"
        summary = summary_of(plan(change(f"{kind}.x", actions, after={})))
        assert summary.verdict is Danger.SAFE


@pytest.mark.parametrize(
    ("address", "says"),
    [
        ("digitalocean_project.edge", "no longer grouped"),
        ("digitalocean_monitor_alert.disk", "nobody is told"),
    ],
)
def test_project_and_alert_deletes_are_downtime(address: str, says: str) -> None:
    summary = summary_of(plan(change(address, ["delete"], before={"name": "edge"})))
    assert summary.verdict is Danger.DOWNTIME
    assert says in summary.changes[0].consequence


# ---------------------------------------------------------------------------
# Exposure: the firewall goes, or lets more in
# ---------------------------------------------------------------------------


def _rule(protocol: str, ports: str | None, *sources: str, **others: list[Any]) -> dict[str, Any]:
    return {
        "protocol": protocol,
        "port_range": ports,
        "source_addresses": list(sources),
        "source_droplet_ids": [],
        "source_kubernetes_ids": [],
        "source_load_balancer_uids": [],
        "source_tags": [],
        **others,
    }


WEB = [_rule("tcp", "443", "0.0.0.0/0", "::/0"), _rule("icmp", "", "0.0.0.0/0", "::/0")]
SSH_HOME = _rule("tcp", "22", "203.0.113.7/32")


def _firewall(inbound: list[dict[str, Any]], droplets: list[int] | None = None) -> dict[str, Any]:
    return {
        "name": "edge",
        "droplet_ids": [1] if droplets is None else droplets,
        "inbound_rule": inbound,
    }


# (case, actions, before, after, after_unknown, danger, text in the consequence)
FIREWALL_CASES: list[tuple[str, list[str], dict[str, Any], dict[str, Any], dict[str, Any], Danger, str]] = [
    ("deleted", ["delete"], _firewall(WEB), {}, {}, Danger.EXPOSURE, "firewall deleted"),
    ("replaced", ["delete", "create"], _firewall(WEB), _firewall(WEB), {}, Danger.EXPOSURE, "has no firewall"),
    ("ssh opened to the world", ["update"], _firewall(WEB), _firewall([*WEB, _rule("tcp", "22", "0.0.0.0/0")]), {}, Danger.EXPOSURE, "TCP 22 (SSH) newly open to 0.0.0.0/0"),
    ("ssh source widened", ["update"], _firewall([*WEB, SSH_HOME]), _firewall([*WEB, _rule("tcp", "22", "203.0.113.0/24")]), {}, Danger.EXPOSURE, "TCP 22 (SSH) now also open to 203.0.113.0/24"),
    ("ssh source added", ["update"], _firewall([*WEB, SSH_HOME]), _firewall([*WEB, _rule("tcp", "22", "203.0.113.7/32", "::/0")]), {}, Danger.EXPOSURE, "now also open to ::/0"),
    ("all tcp ports opened", ["update"], _firewall(WEB), _firewall([*WEB, _rule("tcp", "1-65535", "198.51.100.0/24")]), {}, Danger.EXPOSURE, "TCP 1-65535 (SSH) newly open"),
    ("a new port", ["update"], _firewall(WEB), _firewall([*WEB, _rule("tcp", "8080", "0.0.0.0/0")]), {}, Danger.EXPOSURE, "TCP 8080 newly open to 0.0.0.0/0"),
    ("a tag as a new source", ["update"], _firewall([*WEB, SSH_HOME]), _firewall([*WEB, _rule("tcp", "22", "203.0.113.7/32", source_tags=["office"])]), {}, Danger.EXPOSURE, "tags:office"),
    ("droplet taken out", ["update"], _firewall(WEB), _firewall(WEB, droplets=[]), {}, Danger.EXPOSURE, "taken out of the firewall"),
    ("inbound known only after apply", ["update"], _firewall(WEB), _firewall(WEB), {"inbound_rule": True}, Danger.EXPOSURE, "known only after apply"),
    ("ssh narrowed", ["update"], _firewall([*WEB, _rule("tcp", "22", "203.0.113.0/24")]), _firewall([*WEB, SSH_HOME]), {}, Danger.SAFE, ""),
    ("ssh closed", ["update"], _firewall([*WEB, SSH_HOME]), _firewall(WEB), {}, Danger.SAFE, ""),
    ("rules reordered, icmp port '' vs null", ["update"], _firewall(WEB), _firewall([_rule("icmp", None, "::/0", "0.0.0.0/0"), WEB[0]]), {}, Danger.SAFE, ""),
    ("droplet replaced: its id unknown", ["update"], _firewall(WEB), {**_firewall(WEB), "droplet_ids": None}, {"droplet_ids": True}, Danger.SAFE, ""),
    ("created", ["create"], {}, _firewall(WEB), {}, Danger.SAFE, ""),
]  # fmt: skip


@pytest.mark.parametrize(
    ("actions", "before", "after", "unknown", "danger", "says"),
    [pytest.param(*case[1:], id=case[0]) for case in FIREWALL_CASES],
)
def test_firewall_changes_that_let_more_in_are_exposure(
    actions: list[str],
    before: dict[str, Any],
    after: dict[str, Any],
    unknown: dict[str, Any],
    danger: Danger,
    says: str,
) -> None:
    entry = change(
        "digitalocean_firewall.edge", actions, before=before, after=after, after_unknown=unknown
    )
    (only,) = summary_of(plan(entry)).changes
    assert only.danger is danger, only.consequence
    assert says in only.consequence


def test_the_recorded_rule_removal_stays_safe() -> None:
    from support.plans import recorded

    assert summary_of(recorded("firewall-in-place")).verdict is Danger.SAFE


def test_exposure_ranks_between_downtime_and_address_change() -> None:
    assert Danger.DOWNTIME < Danger.EXPOSURE < Danger.ADDRESS_CHANGE < Danger.DATA_LOSS


# (plan, --fail-on, exit code): the case first, a firewall delete under downtime.
FIREWALL_DELETE = plan(change("digitalocean_firewall.edge", ["delete"], before=_firewall(WEB)))
ALERT_DELETE = plan(change("digitalocean_monitor_alert.cpu", ["delete"], before={}))
FAIL_ON = [
    (FIREWALL_DELETE, "downtime", 1),
    (FIREWALL_DELETE, "exposure", 1),
    (FIREWALL_DELETE, "address-change", 0),
    (ALERT_DELETE, "downtime", 1),
    (ALERT_DELETE, "exposure", 0),
]


@pytest.mark.parametrize(("document", "threshold", "code"), FAIL_ON)
def test_fail_on_counts_exposure_and_every_delete(
    tmp_path: Any, document: dict[str, Any], threshold: str, code: int
) -> None:
    import json

    path = tmp_path / "plan.json"
    path.write_text(json.dumps(document))
    result = runner.invoke(app, ["plan-summary", str(path), "--fail-on", threshold])
    assert result.exit_code == code, result.output
    assert "verdict: safe" not in result.stdout
    if code:
        found = "an exposure change" if document is FIREWALL_DELETE else "a downtime change"
        assert f"plan.json: refusing {found} (--fail-on {threshold})" in result.stdout


def test_a_firewall_delete_is_headed_exposure_in_every_format() -> None:
    summary = summary_of(FIREWALL_DELETE)
    assert "verdict: EXPOSURE: the droplet or the backups become reachable" in render(
        summary, "text"
    )
    assert render(summary, "markdown").startswith("### 🔓 Terraform plan: EXPOSURE")
    assert '"verdict": "exposure"' in render(summary, "json")


# ---------------------------------------------------------------------------
# An errored plan never reads as "no changes" or "safe"
# ---------------------------------------------------------------------------

ERRORED = [
    plan(errored=True),
    plan(change("digitalocean_firewall.edge", ["create"], after={}), errored=True),
]


@pytest.mark.parametrize("document", ERRORED, ids=["no changes", "a safe change"])
def test_an_errored_plan_is_headed_errored(document: dict[str, Any]) -> None:
    summary = summary_of(document)
    text = render(summary, "text")
    markdown = render(summary, "markdown")
    assert "verdict: ERRORED: Terraform did not finish this plan" in text
    assert "no changes" not in text.splitlines()[1]
    assert markdown.startswith("### ❌ Terraform plan: ERRORED")
    assert "✅" not in markdown
    assert '"verdict": "errored"' in render(summary, "json")


def test_negative_twin_a_finished_plan_without_changes_says_so() -> None:
    summary = summary_of(plan())
    assert render(summary, "markdown").startswith("### ✅ Terraform plan: no changes")
