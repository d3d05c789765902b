"""Scenario 10: backups against a real S3, a point in time, and a blank volume restored.

A lab of its own with backups on: the edge gets backup.env and litestream.yml
as rendered and the bucket's key pair where Terraform puts it, and bootstrap.sh
runs Litestream and the key backup from their units against moto's S3 in the
store box, answering as https://ams3.digitaloceanspaces.com with TLS and
signature checks (support/lab/store.py). In order, on one lab: the key files
land in the bucket at boot, readable with the owner's identity and no other;
a laptop joins while Litestream streams; the laptop's node is deleted and the
database restored to a moment before, as `homelab-tunnel backups restore --at`
does it, the operator's ssh connection dropped half-way (the restore goes on
on the edge, and `backups status` tells how it ended); then the droplet and
its whole volume are gone, key files planted by someone holding only the
bucket's key pair are refused (the blank volume stays blank and bootstrap
says why), and once the edge's own objects are back a new droplet restores
from the bucket alone, and the tailnet carries on without a new key.
How much a backup can lose and how long a restore takes are bench/backups.py's.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from support.lab.addresses import LAPTOP, RESERVED_IP
from support.lab.bootstrap import BootstrapRun
from support.lab.lab import Lab
from support.lab.scenario import TailnetSnapshot, homelab_back, tailnet_snapshot
from support.lab.shell import LabError, wait_for
from support.lab.store import age_decrypt, age_identity
from support.monitoring import (
    EXPOSED,
    dashboard_label_values,
    dashboard_queries,
    exposed_names,
    rule_queries,
    unknown,
)

from homelab_tunnel.edge.agekey import identity_from_secret

PREFIX = "lab-edge"
KEY_FILES = ("noise_private.key", "derp_server_private.key")
KEYS_SERVICE = "homelab-tunnel-backup-keys.service"
KEYS_TIMER = "homelab-tunnel-backup-keys.timer"
BLOG = "blog.lab.example"


@pytest.fixture(scope="module")
def backup_lab(lab_with: Callable[..., AbstractContextManager[Lab]]) -> Iterator[Lab]:
    with lab_with(backups=True) as lab:
        yield lab


def _node_count(node_id: int) -> str:
    return f"SELECT count(*) FROM nodes WHERE id = {node_id}"


# ---------------------------------------------------------------------------
# At boot: the key files in the bucket, and who can read them
# ---------------------------------------------------------------------------


@dataclass
class FirstBoot:
    bootstrap: BootstrapRun
    keys: list[str]
    key_backup_after_timer: float  # the first key backup started, from the timer's start
    timer_first: float  # the timer's OnActiveSec: when it would have started it
    owner: dict[str, bool]
    stranger: dict[str, bool]
    bucket_key_holder: dict[str, bool]  # an identity derived from the bucket's key pair
    edge: dict[str, bool]  # the identity derived from the edge secret


@pytest.fixture(scope="module")
def first_boot(backup_lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> FirstBoot:
    lab, store = backup_lab, backup_lab.store
    assert store is not None
    wait_for(
        "the key backup's first run",
        lambda: "Finished homelab-tunnel-backup-keys" in lab.edge.box.log(KEYS_SERVICE),
        30,
    )
    events = lab.edge.unit_events(KEYS_SERVICE, KEYS_TIMER)
    keys = sorted(item["key"] for item in store.objects(f"{PREFIX}/keys/"))
    directory = lab.directory / "downloads"  # the store box sees the host's /tmp
    directory.mkdir()
    identities = tmp_path_factory.mktemp("identities")
    stranger_key = identities / "stranger.key"
    age_identity(stranger_key)
    guessed, edge_key = identities / "from-bucket-secret.key", identities / "edge.key"
    guessed.write_text(identity_from_secret(store.secret_key) + "\n")
    edge_key.write_text(identity_from_secret(lab.edge_secret) + "\n")
    owner, stranger, holder, edge = {}, {}, {}, {}
    for name in KEY_FILES:
        plain = (lab.edge.volume / "headscale-lib" / name).read_bytes()
        encrypted = store.get(f"{PREFIX}/keys/{name}.age", directory / f"{name}.age")
        owner[name] = age_decrypt(encrypted, lab.owner_key) == plain
        stranger[name] = age_decrypt(encrypted, stranger_key) is not None
        holder[name] = age_decrypt(encrypted, guessed) is not None
        edge[name] = age_decrypt(encrypted, edge_key) == plain
    return FirstBoot(
        bootstrap=lab.edge.bootstrap,
        keys=keys,
        key_backup_after_timer=_ran(events, "Starting", KEYS_SERVICE)
        - _ran(events, "Started", KEYS_TIMER),
        timer_first=lab.edge.timer_on_active(KEYS_TIMER),
        owner=owner,
        stranger=stranger,
        bucket_key_holder=holder,
        edge=edge,
    )


def _ran(events: list[tuple[float, str, str]], what: str, name: str) -> float:
    """When systemd first said `what` ("Starting", "Started") of unit `name`; 0 if never."""
    return next((at for at, unit, said in events if unit == name and said.startswith(what)), 0.0)


def test_a_fresh_volume_and_an_empty_bucket_are_a_first_deploy(first_boot: FirstBoot) -> None:
    assert first_boot.bootstrap.step("restore") == (
        "restore-state: nothing to restore: s3://lab-edge-backup/lab-edge holds no backup "
        "yet (first deploy)"
    )
    assert first_boot.bootstrap.step("backups").startswith("backups on: Litestream streams")


def test_the_key_files_reach_the_bucket_at_boot(first_boot: FirstBoot) -> None:
    assert first_boot.keys == [
        f"{PREFIX}/keys/derp_server_private.key.age",
        f"{PREFIX}/keys/manifest.sha256",
        f"{PREFIX}/keys/noise_private.key.age",
    ]


def test_bootstrap_backs_the_keys_up_before_the_timer_would(first_boot: FirstBoot) -> None:
    """The timer's first run is a minute after boot: a volume lost by then lost the noise key."""
    assert 0 <= first_boot.key_backup_after_timer < first_boot.timer_first


def test_the_owner_can_decrypt_the_key_files_and_a_stranger_cannot(first_boot: FirstBoot) -> None:
    assert first_boot.owner == dict.fromkeys(KEY_FILES, True)
    assert first_boot.stranger == dict.fromkeys(KEY_FILES, False)


def test_the_bucket_key_pair_alone_decrypts_no_key_file(first_boot: FirstBoot) -> None:
    """The edge's identity comes from the edge secret, which backup.env does not hold."""
    assert first_boot.bucket_key_holder == dict.fromkeys(KEY_FILES, False)
    assert first_boot.edge == dict.fromkeys(KEY_FILES, True)


# ---------------------------------------------------------------------------
# Streaming: a node joins, and its node is in the bucket
# ---------------------------------------------------------------------------


@dataclass
class Streamed:
    laptop: dict[str, Any]
    in_bucket: Any  # box_backups.py's answer once a restore of the bucket holds the node


@pytest.fixture(scope="module")
def streamed(backup_lab: Lab, first_boot: FirstBoot) -> Streamed:
    lab = backup_lab
    lab.join_machine("laptop", LAPTOP)
    laptop = next(node for node in lab.edge.nodes() if node["name"] == "laptop")
    shipped = lab.edge.backups("shipped", _node_count(laptop["id"]), "1")
    sealed = lab.edge.run_unit("homelab-tunnel-seal.service")  # as its timer does every 30 s
    assert sealed.returncode == 0, sealed.stdout + sealed.stderr
    # Litestream may ship the last of it a moment after the seal read it: a point in
    # time is restorable once the bucket holds the state the seal names.
    assert lab.edge.backups("sealed", "60")["sealed"]
    return Streamed(laptop, shipped)


def test_a_node_that_joins_is_in_the_bucket(streamed: Streamed) -> None:
    """A restore of the bucket's newest backup holds it (box_backups.py waits up to 20 s)."""
    assert streamed.laptop["user"]["name"] == "laptop"
    assert streamed.in_bucket["in_bucket"]


# ---------------------------------------------------------------------------
# What status and the metrics endpoint say of the backups (and every name they serve)
# ---------------------------------------------------------------------------


@dataclass
class Watched:
    settled: dict[str, Any]  # status's backup part once the bucket has everything
    after_write: dict[str, Any]  # and again after one more write reached it
    sources: dict[str, bool]
    page: str  # the metrics endpoint's page, as the homelab scrapes it


def _status(lab: Lab) -> dict[str, Any]:
    done = lab.cli(
        "status", "--config", str(lab.config_path), "--ssh", f"root@{RESERVED_IP}", "--json",
        "--interval", "0.5", check=False,
    )  # fmt: skip
    return dict(json.loads(done.stdout))


def _caught_up(lab: Lab, beyond: int = 0) -> dict[str, Any] | None:
    backup = _status(lab)["edge"]["backup"]
    done = backup["lag_seconds"] == 0 and backup["local_txid"] == backup["bucket_txid"] > beyond
    return backup if done else None


@pytest.fixture(scope="module")
def watched(backup_lab: Lab, streamed: Streamed) -> Watched:
    lab = backup_lab
    for _ in range(3):  # Caddy's histograms of a site exist once it served something
        assert lab.page(BLOG)
    settled = wait_for("status: the bucket has every change", lambda: _caught_up(lab), 30, 1)
    lab.edge.headscale("users", "create", "watched")
    after_write = wait_for(
        "status: the new change is in the bucket too",
        lambda: _caught_up(lab, settled["bucket_txid"]), 30, 1,
    )  # fmt: skip
    # Sealed too, as the timer would: the point in time below restores only a sealed state.
    sealed = lab.edge.run_unit("homelab-tunnel-seal.service")
    assert sealed.returncode == 0, sealed.stdout + sealed.stderr
    assert lab.edge.backups("sealed", "60")["sealed"]
    address = lab.edge.node.cli("ip", "-4").stdout.split()[0]
    page = lab.home.box.run(["curl", "-sS", "--max-time", "10", f"http://{address}:9180/metrics"])
    # What tests/data/edge-metrics.prom is copied from when the names change.
    (lab.directory / "logs" / "edge-metrics.prom").write_text(page.stdout)
    return Watched(settled, after_write, _status(lab)["edge"]["sources"], page.stdout)


def test_status_follows_litestream_into_the_bucket(watched: Watched) -> None:
    assert watched.settled["error"] is None
    assert watched.after_write["local_txid"] > watched.settled["local_txid"]
    assert watched.sources == {"caddy": True, "headscale": True, "litestream": True,
                               "tailscale": True}  # fmt: skip


def test_every_name_in_monitoring_is_one_this_edge_serves(watched: Watched) -> None:
    names = exposed_names(watched.page)
    assert unknown([*dashboard_queries(), *rule_queries().values()], names) == []
    for selector, label in dashboard_label_values():
        assert label in names[selector.name], (selector, label)
    # The copy the lab-less tests read holds nothing this edge does not serve.
    assert unknown([*exposed_names(EXPOSED.read_text())], names) == []


# ---------------------------------------------------------------------------
# A point in time: a deleted node comes back
# ---------------------------------------------------------------------------


@dataclass
class PointInTime:
    at: str
    laptop: dict[str, Any]
    after_delete: list[str]
    dropped: subprocess.CompletedProcess[str]  # the CLI, its session killed half-way
    healthy_when_dropped: bool
    status: subprocess.CompletedProcess[str]
    nodes: list[dict[str, Any]]
    aside: list[str]
    aside_laptop: int
    later_write: Any


@pytest.fixture(scope="module")
def point_in_time(backup_lab: Lab, streamed: Streamed) -> PointInTime:
    lab, edge, laptop = backup_lab, backup_lab.edge, streamed.laptop
    # A whole second (what --at takes) after the laptop's node reached the bucket.
    at = datetime.fromtimestamp(int(time.time()) + 1, UTC)
    wait_for("the restore point to pass", lambda: time.time() > at.timestamp() + 0.05, 2, 0.02)
    edge.headscale("nodes", "delete", "--identifier", str(laptop["id"]), "--force")
    after_delete = [node["name"] for node in edge.nodes()]
    edge.backups("shipped", _node_count(laptop["id"]), "0")
    when = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    ssh = f"root@{RESERVED_IP}"
    config = ("--config", str(lab.config_path))  # where the edge's host key is kept
    cli = lab.cli_session("backups", "restore", "--ssh", ssh, *config, "--at", when, "--force")
    # Half-way: the restore has stopped Headscale. Then the connection drops.
    wait_for(
        "the restore stopping Headscale",
        lambda: cli.poll() is not None or not edge.healthy(),
        120,
        0.05,
    )
    if cli.poll() is not None:
        raise LabError(f"the restore ended before it stopped Headscale: {cli.communicate()}")
    healthy_when_dropped = edge.healthy()
    os.killpg(cli.pid, signal.SIGKILL)
    out, err = cli.communicate(timeout=10)
    dropped = subprocess.CompletedProcess(cli.args, cli.returncode, out, err)
    wait_for("Headscale after the restore", edge.healthy, 60, 0.1)
    wait_for(
        "the restore's outcome",
        lambda: (
            "restored the database" in lab.cli("backups", "status", "--ssh", ssh, *config).stdout
        ),
        30,
        0.2,
    )
    status = lab.cli("backups", "status", "--ssh", ssh, *config, check=False)
    aside = sorted((edge.volume / "headscale-lib/pre-restore").glob("*/*"))
    edge.headscale("users", "create", "after-restore")
    later = edge.backups("shipped", "SELECT count(*) FROM users WHERE name = 'after-restore'", "1")
    return PointInTime(
        at=when,
        laptop=laptop,
        after_delete=after_delete,
        dropped=dropped,
        healthy_when_dropped=healthy_when_dropped,
        status=status,
        nodes=edge.nodes(),
        aside=[path.name for path in aside],
        aside_laptop=_count_in(aside, _node_count(laptop["id"])),
        later_write=later,
    )


def _count_in(files: list[Path], sql: str) -> int:
    """`sql` on a copy of the database set aside (with its -wal and -shm): Headscale was
    killed at the stop's timeout, so its WAL needs the recovery a read-only open cannot do."""
    with tempfile.TemporaryDirectory() as scratch:
        for path in files:
            if path.name.startswith("db.sqlite"):
                shutil.copy2(path, Path(scratch) / path.name)
        with sqlite3.connect(Path(scratch) / "db.sqlite") as connection:
            count = int(connection.execute(sql).fetchone()[0])
        connection.close()
    return count


def test_a_restore_over_ssh_finishes_though_the_connection_dropped(
    point_in_time: PointInTime,
) -> None:
    assert point_in_time.dropped.returncode == -signal.SIGKILL
    assert not point_in_time.healthy_when_dropped  # it was half-way: Headscale stopped
    assert "laptop" not in point_in_time.after_delete


def test_backups_status_tells_how_the_restore_ended(point_in_time: PointInTime) -> None:
    done = point_in_time.status
    assert done.returncode == 0, done.stdout + done.stderr
    guard, said = done.stdout.splitlines()
    assert guard == (
        "restore-state: upgrade guard: Headscale 0.29.2 (database_versions says v0.29.2) -> "
        "0.29.2: allowed"
    )
    assert said.startswith(f"restore-state: restored the database as of {point_in_time.at}; ")


def test_the_deleted_node_is_back(point_in_time: PointInTime) -> None:
    back = next(node for node in point_in_time.nodes if node["name"] == "laptop")
    for field in ("id", "machine_key", "node_key", "ip_addresses"):
        assert back[field] == point_in_time.laptop[field], field


def test_the_replaced_database_was_moved_aside_not_deleted(point_in_time: PointInTime) -> None:
    assert "db.sqlite" in point_in_time.aside
    assert ".homelab-tunnel-headscale-version" in point_in_time.aside
    assert point_in_time.aside_laptop == 0  # the state from after the delete, kept


def test_litestream_streams_on_from_the_restored_database(point_in_time: PointInTime) -> None:
    assert point_in_time.later_write["in_bucket"]  # a restore of the bucket has it


# ---------------------------------------------------------------------------
# The droplet and its whole volume gone: a new droplet restores from the bucket
# ---------------------------------------------------------------------------


@dataclass
class Restored:
    before: TailnetSnapshot
    after: TailnetSnapshot
    planted: BootstrapRun  # a boot with key files planted by a bucket-key holder
    planted_volume: list[str]
    bootstrap: BootstrapRun
    page: str  # a site through the new edge, once the homelab is back online
    health: Any


def _plant_keys(lab: Lab, directory: Path) -> dict[str, Path]:
    """With the bucket's key pair only: a noise key of the attacker's, and a manifest naming it.

    Returns the edge's own objects, to put back."""
    store = lab.store
    assert store is not None
    saved = {
        name: store.get(f"{PREFIX}/keys/{name}", directory / f"saved-{name}")
        for name in ("manifest.sha256", "noise_private.key.age")
    }
    planted = directory / "planted.key"
    planted.write_bytes(os.urandom(32))
    encrypted = directory / "planted.age"
    subprocess.run(
        ["age", "-r", age_identity(directory / "attacker.key"), "-o", str(encrypted), str(planted)],
        check=True,
    )
    manifest = directory / "planted-manifest"
    manifest.write_text(
        f"{hashlib.sha256(planted.read_bytes()).hexdigest()}  noise_private.key\n"
        f"{hashlib.sha256(encrypted.read_bytes()).hexdigest()}  noise_private.key.age\n"
    )
    store.put(f"{PREFIX}/keys/noise_private.key.age", encrypted)
    store.put(f"{PREFIX}/keys/manifest.sha256", manifest)
    return saved


@pytest.fixture(scope="module")
def restored(backup_lab: Lab, point_in_time: PointInTime) -> Restored:
    lab = backup_lab
    assert lab.store is not None
    sealed = lab.edge.run_unit("homelab-tunnel-seal.service")  # the newest state, as the timer
    assert sealed.returncode == 0, sealed.stdout + sealed.stderr
    before = tailnet_snapshot(lab)
    directory = lab.directory / "planted"  # the store box sees the host's /tmp
    directory.mkdir()
    saved = _plant_keys(lab, directory)
    planted = lab.replace_edge(blank_volume=True, check=False)
    planted_volume = sorted(p.name for p in (lab.edge.volume / "headscale-lib").iterdir())
    for name, path in saved.items():
        lab.store.put(f"{PREFIX}/keys/{name}", path)
    run = lab.edge.wait_ready(timeout=180)  # systemd's next attempt, after its backoff
    page = lab.page_once_up(BLOG)
    homelab_back(lab)  # the health agent judges the path: direct first
    return Restored(
        before=before,
        after=tailnet_snapshot(lab),
        planted=planted,
        planted_volume=planted_volume,
        bootstrap=run,
        page=page,
        health=lab.edge.run_unit("homelab-tunnel-health.service"),
    )


def test_key_files_planted_with_the_bucket_key_alone_are_refused(restored: Restored) -> None:
    assert restored.planted.returncode == 1
    assert restored.planted.failure() == (
        "restore from the backup bucket: lab-edge/keys/manifest.sha256 was not written by this "
        "edge (it carries no MAC); no key file restored"
    )
    assert restored.planted_volume == []  # blank: the next attempt starts over


def test_restore_state_says_what_it_restored(restored: Restored) -> None:
    assert restored.bootstrap.step("restore") == (
        "restore-state: restored database noise_private.key derp_server_private.key "
        "from s3://lab-edge-backup/lab-edge"
    )
    assert "Headscale 0.29.2 (database_versions says v0.29.2) -> 0.29.2: allowed" in (
        restored.bootstrap.step("upgrade-guard")
    )


def test_headscale_comes_back_with_its_noise_key_and_every_node(restored: Restored) -> None:
    assert restored.after.noise_key == restored.before.noise_key
    assert restored.after.user_nodes == restored.before.user_nodes  # the homelab, the laptop


def test_the_homelab_reconnects_on_its_old_key_and_address(restored: Restored) -> None:
    assert restored.after.home_key == restored.before.home_key
    assert restored.after.home_address == restored.before.home_address
    assert restored.after.home_address.startswith("100.64.")
    assert restored.after.keys["homelab"] == restored.before.keys["homelab"]  # none minted


def test_the_edge_rejoins_under_its_own_name(restored: Restored, backup_lab: Lab) -> None:
    """Its tailscaled state went with the volume: a new node, the stale one deleted first."""
    [old] = restored.before.edge_nodes
    [new] = restored.after.edge_nodes
    assert new == old == backup_lab.config.name
    assert restored.after.nodes[new][0] != restored.before.nodes[old][0], "a new node id"
    assert [node["name"] for node in backup_lab.edge.nodes()].count(backup_lab.config.name) == 1
    assert restored.after.keys["edge"] == restored.before.keys["edge"] + 1


def test_the_health_agent_reports_the_restore(restored: Restored) -> None:
    out = restored.health.stdout
    assert "warning: backup: restored from backup: database noise_private.key " in out
    assert "problem" not in out  # Litestream runs again


def test_the_sites_are_served_through_the_restored_edge(restored: Restored) -> None:
    assert "blog app" in restored.page
