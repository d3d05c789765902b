"""Real plans of real changes: apply once into the fake account, then let plan-summary judge.

The base shape is applied for real (the provider against the fake
DigitalOcean API, ~21 s of the provider's own fixed 10 s waits, and its
Spaces side: the config bucket, the keys, the software and config objects),
then each change is planned with a refresh against that state and read back
by plan-summary's public API. Only creation is applied: a replacement costs
~70 s of provider sleeps and says nothing a plan does not.

A site added, removed or changed, or another webhook, is an in-place update
of the config object (and the records of a name that comes or goes):
nothing is replaced (issue 18).
"""

from __future__ import annotations

import copy
import json
import os
import shutil
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest
from support.channel import config_metadata
from support.config import example_raw
from support.fake_digitalocean import Call, FakeDigitalOcean
from support.fake_digitalocean.spaces_s3 import FakeSpaces
from support.shapes import BY_NAME, FINGERPRINT, Shape, Synth, shape
from support.terraform import OfflineTerraform, Run, Workdir

from homelab_tunnel.payload import edge_config_object, software
from homelab_tunnel.payload import user_data as render_user_data
from homelab_tunnel.plan.classify import read_plan
from homelab_tunnel.plan.model import Action, Danger, PlanSummary
from homelab_tunnel.render.secrets import (
    CHANNEL_ACCESS_KEY,
    CHANNEL_SECRET_KEY,
    EDGE_SECRET,
    fill,
)

# The default tls.caa_issuer, as DigitalOcean wants it (trailing dot).
CAA_ISSUER = "letsencrypt.org."

BASE = BY_NAME["base"]
SITES = example_raw()["sites"]
WIKI = {"domain": "wiki.example.com", "upstream": "homelab", "port": 3000}
BLOG_ON_8081 = [{**SITES[0], "port": 8081}, *SITES[1:]]
BLOG_ON_NAS = [{**SITES[0], "upstream": "nas"}, *SITES[1:]]
CONFIG_OBJECT = "digitalocean_spaces_bucket_object.config"
WEBHOOK = "https://hooks.example.com/services/T000/B000/XXXX"


@dataclass(frozen=True)
class Applied:
    workdir: Workdir
    api: FakeDigitalOcean
    spaces: FakeSpaces
    stack: dict[str, Any]
    calls: list[Call]


@pytest.fixture(scope="module")
def applied(
    terraform: OfflineTerraform,
    synthesized: Synth,
    certificate: tuple[Path, Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Applied]:
    cert, key = certificate
    stack = synthesized(BASE)
    with (
        FakeDigitalOcean(cert, key) as api,
        FakeSpaces(tmp_path_factory.mktemp("spaces")) as spaces,
    ):
        api.state.domains.clear()  # the base shape creates its zone
        spaces.attach(api)
        workdir = terraform.workdir(
            tmp_path_factory.mktemp("applied") / "edge", stack, api_url=api.url,
            cert=spaces.bundle(cert), extra={**spaces.env(), "TF_VAR_health_webhook_url": WEBHOOK},
        )  # fmt: skip
        workdir.init()
        done = workdir.apply()
        assert done.returncode == 0, done.output
        yield Applied(workdir, api, spaces, stack, list(api.calls))


def _without_volume(stack: dict[str, Any]) -> dict[str, Any]:
    """The state volume taken out of the configuration, with every reference to it."""
    stack = copy.deepcopy(stack)
    del stack["resource"]["digitalocean_volume"]
    del stack["resource"]["digitalocean_droplet"]["edge"]["volume_ids"]
    project = stack["resource"]["digitalocean_project"]["edge"]
    project["resources"] = [r for r in project["resources"] if "digitalocean_volume" not in r]
    return stack


def _without_prevent_destroy(stack: dict[str, Any]) -> dict[str, Any]:
    stack = copy.deepcopy(stack)
    del stack["resource"]["digitalocean_volume"]["state"]["lifecycle"]
    return stack


@dataclass(frozen=True)
class Change:
    """A config change, the plan's action per address, the danger of the ones that matter."""

    shape: Shape
    actions: dict[str, str]
    dangers: dict[str, Danger]
    verdict: Danger
    edit: Callable[[dict[str, Any]], dict[str, Any]] = field(default=lambda stack: stack)


CHANGES = {
    "site-added": Change(
        shape("site-added", sites=[*SITES, WIKI]),
        {
            "digitalocean_record.a_wiki": "create",
            "digitalocean_record.caa_wiki": "create",
            CONFIG_OBJECT: "update",
        },
        {"digitalocean_record.a_wiki": Danger.SAFE, CONFIG_OBJECT: Danger.IN_PLACE},
        Danger.IN_PLACE,
    ),
    "site-removed": Change(
        shape("site-removed", sites=SITES[:1]),
        {
            "digitalocean_record.a_photos": "delete",
            "digitalocean_record.caa_photos": "delete",
            CONFIG_OBJECT: "update",
        },
        {"digitalocean_record.a_photos": Danger.ADDRESS_CHANGE, CONFIG_OBJECT: Danger.IN_PLACE},
        Danger.ADDRESS_CHANGE,
    ),
    "port-changed": Change(
        shape("port-changed", sites=BLOG_ON_8081),
        {CONFIG_OBJECT: "update"},
        {CONFIG_OBJECT: Danger.IN_PLACE},
        Danger.IN_PLACE,
    ),
    "upstream-changed": Change(
        shape("upstream-changed", sites=BLOG_ON_NAS),
        {CONFIG_OBJECT: "update"},
        {CONFIG_OBJECT: Danger.IN_PLACE},
        Danger.IN_PLACE,
    ),
    "size-changed": Change(
        shape("size-changed", size="s-1vcpu-2gb"),
        {"digitalocean_droplet.edge": "update"},
        {"digitalocean_droplet.edge": Danger.DOWNTIME},
        Danger.DOWNTIME,
    ),
    "reserved-ipv6-on": Change(
        shape("reserved-ipv6-on", reserved_ipv6=True),
        {
            "digitalocean_reserved_ipv6.edge": "create",
            "digitalocean_reserved_ipv6_assignment.edge": "create",
            "digitalocean_record.aaaa_blog": "create",
            "digitalocean_record.aaaa_photos": "create",
            "digitalocean_record.aaaa_headscale": "create",
            "digitalocean_project.edge": "update",
        },
        {"digitalocean_reserved_ipv6.edge": Danger.SAFE},
        Danger.SAFE,
    ),
    "volume-removed": Change(
        BASE,
        {"digitalocean_volume.state": "delete", "digitalocean_project.edge": "update"},
        {"digitalocean_volume.state": Danger.DATA_LOSS},
        Danger.DATA_LOSS,
        _without_volume,
    ),
    "region-moved-without-prevent-destroy": Change(
        shape("region-moved", region="ams3"),
        {
            "digitalocean_droplet.edge": "replace",
            "digitalocean_volume.state": "replace",
            "digitalocean_reserved_ip.edge": "replace",
            "digitalocean_reserved_ip_assignment.edge": "replace",
            # The config bucket follows the region (the nearest Spaces), its objects with it.
            "digitalocean_spaces_bucket.config": "replace",
            "digitalocean_spaces_bucket_object.config": "replace",
            "digitalocean_spaces_bucket_object.software": "replace",
            "digitalocean_record.a_blog": "update",
            "digitalocean_record.a_photos": "update",
            "digitalocean_record.a_headscale": "update",
            "digitalocean_firewall.edge": "update",
            "digitalocean_monitor_alert.cpu": "update",
            "digitalocean_monitor_alert.memory": "update",
            "digitalocean_monitor_alert.disk": "update",
            "digitalocean_project.edge": "update",
        },
        {
            "digitalocean_volume.state": Danger.DATA_LOSS,
            "digitalocean_reserved_ip.edge": Danger.ADDRESS_CHANGE,
            "digitalocean_record.a_blog": Danger.ADDRESS_CHANGE,
            "digitalocean_droplet.edge": Danger.DOWNTIME,
        },
        Danger.DATA_LOSS,
        _without_prevent_destroy,
    ),
}


def _copy(applied: Applied, path: Path, stack: dict[str, Any]) -> Workdir:
    """A working directory of its own holding a copy of the applied state."""
    shutil.copytree(applied.workdir.path, path, symlinks=True)
    workdir = Workdir(path, applied.workdir.executable, applied.workdir.env)
    workdir.write(stack)
    return workdir


@dataclass(frozen=True)
class Planned:
    run: Run
    summary: PlanSummary | None
    document: dict[str, Any] | None


def _plan(workdir: Workdir, *args: str) -> Planned:
    run = workdir.plan(*args)
    if run.returncode not in (0, 2):
        return Planned(run, None, None)
    text = workdir.show_plan()
    (workdir.path / "plan.json").write_text(text)
    return Planned(run, read_plan(str(workdir.path / "plan.json")), json.loads(text))


@pytest.fixture(scope="module")
def plans(
    applied: Applied, synthesized: Synth, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Planned]:
    """Every change planned against the applied state, each in a copy of it, side by side."""
    root = tmp_path_factory.mktemp("changes")
    stacks = {name: change.edit(synthesized(change.shape)) for name, change in CHANGES.items()}
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        done = pool.map(lambda name: _plan(_copy(applied, root / name, stacks[name])), CHANGES)
        return dict(zip(CHANGES, done, strict=True))


# ---------------------------------------------------------------------------
# The apply: what the provider asked the API for
# ---------------------------------------------------------------------------


def _created(applied: Applied, path: str) -> list[dict[str, Any]]:
    return [call.body for call in applied.calls if call.method == "POST" and call.path == path]


def test_apply_builds_the_whole_edge_in_the_account(applied: Applied) -> None:
    state = applied.api.state
    (droplet_id, droplet), (volume,) = next(iter(state.droplets.items())), state.volumes
    (address,) = state.reserved_ips.values()
    assert (droplet["status"], droplet["volume_ids"]) == ("active", [volume["id"]])
    assert address["droplet"] == {"id": droplet_id}
    assert [firewall["droplet_ids"] for firewall in state.firewalls.values()] == [[droplet_id]]
    assert [alert["entities"] for alert in state.alerts.values()] == [[str(droplet_id)]] * 3
    (project,) = [p for p in state.projects.values() if p["name"] == "homelab-edge"]
    assert set(state.project_resources[project["id"]]) == {
        f"do:droplet:{droplet_id}",
        f"do:volume:{volume['id']}",
        f"do:reservedip:{address['ip']}",
        "do:domain:example.com",
    }


def test_records_point_at_the_reserved_ip_and_let_only_letsencrypt_issue(
    applied: Applied,
) -> None:
    (address,) = applied.api.state.reserved_ips
    records = {
        (r["type"], r["name"]): (r["data"], r["tag"])
        for r in applied.api.state.domains["example.com"]
        if r["type"] in ("A", "CAA")
    }
    names = ("blog", "photos", "headscale")
    assert records == {("A", name): (address, None) for name in names} | {
        ("CAA", name): (CAA_ISSUER.removesuffix("."), "issue") for name in names
    }


def test_reserved_ip_and_records_exist_before_the_droplet_is_created(applied: Applied) -> None:
    order = [(call.method, call.path) for call in applied.calls]
    droplet = order.index(("POST", "/v2/droplets"))
    records = [
        i for i, item in enumerate(order) if item == ("POST", "/v2/domains/example.com/records")
    ]
    assert len(records) == 6
    assert max([order.index(("POST", "/v2/reserved_ips")), *records]) < droplet


def test_droplet_is_created_with_its_volume_key_by_fingerprint_and_user_data(
    applied: Applied,
) -> None:
    (body,) = _created(applied, "/v2/droplets")
    (volume,) = applied.api.state.volumes
    assert body["volumes"] == [{"id": volume["id"]}]
    assert body["ssh_keys"] == [FINGERPRINT]
    assert (body["ipv6"], body["monitoring"], body["region"]) == (True, True, "fra1")
    # What render produces, byte for byte, once Terraform filled in the keys it made.
    reader, secret = applied.spaces.minted["homelab-edge-config"], _edge_secret(applied)
    values = {CHANNEL_ACCESS_KEY: reader[0], CHANNEL_SECRET_KEY: reader[1], EDGE_SECRET: secret}
    assert body["user_data"] == fill(render_user_data(BASE.config()), values)


def _edge_secret(applied: Applied) -> str:
    return applied.spaces.minted["homelab-edge-edge-secret"][1]


def test_apply_writes_the_software_and_the_config_with_the_mac_the_edge_checks(
    applied: Applied,
) -> None:
    spaces = applied.spaces.client(region="fra1")
    config = edge_config_object(BASE.config())
    written = spaces.get_object(Bucket="homelab-edge-config", Key=config.key)
    assert written["Body"].read().decode() == config.body
    # Terraform's HCL computed the MAC edge/channel.py checks, from the key it made.
    assert written["Metadata"] == config_metadata(
        config.body, secret=_edge_secret(applied), webhook=WEBHOOK
    )
    listed = spaces.list_objects_v2(Bucket="homelab-edge-config", Prefix="homelab-edge/software/")
    (item,) = listed["Contents"]
    body = spaces.get_object(Bucket="homelab-edge-config", Key=item["Key"])["Body"].read()
    assert body == software()


def test_the_edges_key_reads_the_config_bucket_and_writes_nothing(applied: Applied) -> None:
    keys = {key["name"]: key for key in applied.api.state.spaces_keys.values()}
    grant = [{"bucket": "homelab-edge-config", "permission": "read"}]
    assert keys["homelab-edge-config"]["grants"] == keys["homelab-edge-edge-secret"]["grants"]
    assert keys["homelab-edge-config"]["grants"] == grant
    reader = applied.spaces.client(applied.spaces.minted["homelab-edge-config"], region="fra1")
    key = edge_config_object(BASE.config()).key
    assert reader.get_object(Bucket="homelab-edge-config", Key=key)["Body"].read()
    with pytest.raises(botocore.exceptions.ClientError, match="AccessDenied"):
        reader.put_object(Bucket="homelab-edge-config", Key=key, Body=b"{}")
    acl = applied.spaces.client(region="fra1").get_bucket_acl(Bucket="homelab-edge-config")
    assert [g["Permission"] for g in acl["Grants"]] == ["FULL_CONTROL"]  # private: the owner only


def test_unchanged_config_plans_no_changes_after_a_refresh(
    applied: Applied, tmp_path: Path
) -> None:
    # The fake answers every read the way the provider wrote it: a refresh finds no drift.
    workdir = _copy(applied, tmp_path / "noop", applied.stack)
    mark = len(applied.api.calls)
    planned = _plan(workdir)
    assert planned.run.returncode == 0, planned.run.output
    assert planned.summary is not None and planned.summary.verdict is None
    refresh = applied.api.calls[mark:]
    assert refresh and {call.method for call in refresh} == {"GET"}


# ---------------------------------------------------------------------------
# Changes, planned for real and judged by plan-summary
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", CHANGES)
def test_plan_of_change_has_exactly_the_expected_actions(
    name: str, plans: dict[str, Planned]
) -> None:
    planned = plans[name]
    assert planned.run.returncode == 2, planned.run.errors()
    assert planned.summary is not None
    actions = {change.address: change.action.value for change in planned.summary.changes}
    assert actions == CHANGES[name].actions


@pytest.mark.parametrize("name", CHANGES)
def test_plan_summary_judges_the_real_plan_of_change(name: str, plans: dict[str, Planned]) -> None:
    summary = plans[name].summary
    assert summary is not None
    dangers = {c.address: c.danger for c in summary.changes if c.address in CHANGES[name].dangers}
    assert dangers == CHANGES[name].dangers
    assert summary.verdict is CHANGES[name].verdict
    assert summary.reaches(CHANGES[name].verdict)


DAY_TO_DAY = ("site-added", "site-removed", "port-changed", "upstream-changed")


@pytest.mark.parametrize("name", DAY_TO_DAY)
def test_a_day_to_day_change_updates_the_config_object_in_place_and_replaces_nothing(
    name: str, plans: dict[str, Planned]
) -> None:
    summary, document = plans[name].summary, plans[name].document
    assert summary is not None and document is not None
    assert "digitalocean_droplet.edge" not in {c.address for c in summary.changes}
    assert not [c.address for c in summary.changes if c.action is Action.REPLACE]
    (entry,) = [c for c in document["resource_changes"] if c["address"] == CONFIG_OBJECT]
    assert entry["change"]["actions"] == ["update"]
    assert entry["change"]["before"]["content"] != entry["change"]["after"]["content"]
    (config,) = [c for c in summary.changes if c.address == CONFIG_OBJECT]
    assert "applied by the running edge with no downtime" in config.consequence


def test_a_site_added_is_named_in_the_plan(plans: dict[str, Planned]) -> None:
    summary = plans["site-added"].summary
    assert summary is not None
    (config,) = [c for c in summary.changes if c.address == CONFIG_OBJECT]
    assert "added wiki.example.com (-> http://homelab:3000)" in config.consequence


def test_another_webhook_updates_only_the_config_objects_metadata(
    applied: Applied, tmp_path: Path
) -> None:
    workdir = _copy(applied, tmp_path / "webhook", applied.stack)
    workdir = Workdir(
        workdir.path, workdir.executable,
        {**workdir.env, "TF_VAR_health_webhook_url": "https://ntfy.sh/another-topic"},
    )  # fmt: skip
    planned = _plan(workdir)
    assert planned.run.returncode == 2, planned.run.errors()
    assert planned.summary is not None
    (change,) = planned.summary.changes
    assert (change.address, change.action, change.danger) == (
        CONFIG_OBJECT, Action.UPDATE, Danger.IN_PLACE,
    )  # fmt: skip
    assert "its webhook or MAC changed" in change.consequence
    assert "ntfy.sh" not in change.consequence  # sensitive: never quoted


def test_size_change_resizes_the_disk_too_so_it_cannot_be_undone(
    plans: dict[str, Planned],
) -> None:
    document = plans["size-changed"].document
    assert document is not None
    (droplet,) = [
        c for c in document["resource_changes"] if c["address"] == "digitalocean_droplet.edge"
    ]
    assert droplet["change"]["after"]["size"] == "s-1vcpu-2gb"
    assert droplet["change"]["after"]["resize_disk"] is True


def test_volume_left_out_of_the_config_is_deleted_while_still_attached(
    plans: dict[str, Planned], applied: Applied
) -> None:
    # The droplet is not touched (volume_ids is optional and computed), so nothing detaches
    # the volume first; the API refuses that delete (see fake_digitalocean.volumes).
    summary = plans["volume-removed"].summary
    assert summary is not None
    assert "digitalocean_droplet.edge" not in {c.address for c in summary.changes}
    assert applied.api.state.volumes[0]["droplet_ids"] != []


def test_applying_the_volume_removal_fails_on_the_attached_volume(
    applied: Applied, tmp_path: Path
) -> None:
    # No provider sleep on this path; the account is put back afterwards for the other tests.
    saved = copy.deepcopy(applied.api.state)
    try:
        done = _copy(applied, tmp_path / "apply", _without_volume(applied.stack)).apply()
        deletes = [c.path for c in applied.api.calls if c.method == "DELETE"]
    finally:
        applied.api.state = saved
    assert done.returncode == 1
    assert deletes == [f"/v2/volumes/{saved.volumes[0]['id']}"]
    assert "409" in done.output and "cannot be deleted" in done.output


# ---------------------------------------------------------------------------
# prevent_destroy on the volume, enforced by Terraform at plan time
# ---------------------------------------------------------------------------

PREVENTED = (
    "Instance cannot be destroyed: Resource digitalocean_volume.state has "
    "lifecycle.prevent_destroy set, but the plan calls for this resource to be destroyed."
)


def test_region_move_is_refused_at_plan_time_by_the_volumes_prevent_destroy(
    applied: Applied, synthesized: Synth, tmp_path: Path
) -> None:
    stack = synthesized(CHANGES["region-moved-without-prevent-destroy"].shape)
    planned = _plan(_copy(applied, tmp_path / "region", stack))
    assert planned.run.returncode == 1
    assert [e[: len(PREVENTED)] for e in planned.run.errors()] == [PREVENTED]


def test_destroying_the_stack_is_refused_by_the_volumes_prevent_destroy(
    applied: Applied, tmp_path: Path
) -> None:
    planned = _plan(_copy(applied, tmp_path / "destroy", applied.stack), "-destroy")
    assert planned.run.returncode == 1
    assert [e[: len(PREVENTED)] for e in planned.run.errors()] == [PREVENTED]


def test_destroy_without_prevent_destroy_is_planned_and_judged_data_loss(
    applied: Applied, tmp_path: Path
) -> None:
    stack = _without_prevent_destroy(applied.stack)
    planned = _plan(_copy(applied, tmp_path / "destroy", stack), "-destroy")
    assert planned.run.returncode == 2, planned.run.errors()
    assert planned.summary is not None
    assert planned.summary.verdict is Danger.DATA_LOSS
    assert {c.action for c in planned.summary.changes} == {Action.DELETE}
