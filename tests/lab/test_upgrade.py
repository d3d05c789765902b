"""Scenario 9: Headscale upgraded on the state volume, one minor release at a time.

A lab of its own that starts at Headscale 0.27.1 with backups on, so every
database here is one a real release wrote: the homelab joins under 0.27.1.
Each move sets headscale.version in the config; user_data changes, so a new
droplet boots on the volume and bootstrap.sh decides, as on DigitalOcean:

1. 0.27.1 -> 0.29.2 skips a minor: the upgrade guard refuses it before
   Headscale runs, and the database is untouched.
2. 0.27.1 -> 0.28.0 is allowed; a laptop joins, a user and a node 0.28 makes.
3. 0.28.0 -> 0.29.2 is allowed: a copy of the 0.28 database first, on the
   volume and in the bucket; every node intact; the homelab reconnects on its
   old key, and nobody mints a new one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.lab.addresses import LAPTOP
from support.lab.bootstrap import BootstrapRun
from support.lab.lab import Lab
from support.lab.scenario import TailnetSnapshot, homelab_back, tailnet_snapshot
from support.lab.shell import run

PREFIX = "lab-edge"


@pytest.fixture(scope="module")
def upgrade_lab(lab_with: Callable[..., AbstractContextManager[Lab]]) -> Iterator[Lab]:
    with lab_with(release="0.27.1", backups=True) as lab:
        yield lab


def _digest(state: Path) -> dict[str, str]:
    """The database and its write-ahead log, a missing log read as an empty one.

    Not db.sqlite-shm, the log's index: any reader (the guard reading
    database_versions) may rebuild it, or create an empty log.
    """
    return {
        name: hashlib.sha256(path.read_bytes() if path.exists() else b"").hexdigest()
        for name, path in ((name, state / name) for name in ("db.sqlite", "db.sqlite-wal"))
    }


def _processes(lab: Lab) -> list[str]:
    """The program names running in the edge's network namespace."""
    pids = run(["ip", "netns", "pids", lab.edge.box.netns], check=False).stdout.split()
    names = []
    for pid in pids:
        try:
            names.append(Path(f"/proc/{pid}/comm").read_text().strip())
        except OSError:
            continue
    return names


# ---------------------------------------------------------------------------
# 1. 0.27.1 -> 0.29.2: refused before Headscale runs
# ---------------------------------------------------------------------------


@dataclass
class Refused:
    run: BootstrapRun
    status: str
    before: dict[str, str]
    after: dict[str, str]
    headscale_log: str
    processes: list[str]


@pytest.fixture(scope="module")
def refused(upgrade_lab: Lab) -> Refused:
    lab = upgrade_lab
    # The 0.27.1 droplet goes away: its units stop on the way out, as here (Headscale
    # checkpoints its database; Litestream, which checkpoints it too, lets go of it).
    lab.edge.systemctl("stop", "homelab-tunnel-litestream", "headscale")
    before = _digest(lab.edge.volume / "headscale-lib")
    result = lab.deploy_headscale("0.29.2", check=False)  # a new droplet on the volume
    return Refused(
        run=result,
        status=lab.edge.box.path("/var/lib/homelab-tunnel/bootstrap-status").read_text(),
        before=before,
        after=_digest(lab.edge.volume / "headscale-lib"),
        headscale_log=lab.edge.box.log("headscale"),  # the new droplet's: it never ran
        processes=_processes(lab),
    )


def test_a_skipped_minor_is_refused_naming_both_versions_and_the_fix(refused: Refused) -> None:
    assert refused.run.returncode == 1
    line = refused.run.failure()
    assert line.startswith(
        "Headscale 0.27.1 -> 0.29.2 skips 1 minor release(s); the database refuses it."
    )
    assert "Fix: set headscale.version to the newest 0.28.x release" in line
    assert refused.status == f"failed at step upgrade-guard: {line}\n"  # the health agent's


def test_headscale_never_ran_and_the_database_is_untouched(refused: Refused) -> None:
    assert refused.before["db.sqlite"] != hashlib.sha256(b"").hexdigest()  # 0.27.1 wrote one
    assert refused.after == refused.before
    assert refused.headscale_log == ""
    assert "headscale" not in refused.processes
    assert refused.run.step("headscale-package") == ""  # bootstrap stopped at the guard


# ---------------------------------------------------------------------------
# 2. and 3. 0.27.1 -> 0.28.0 -> 0.29.2
# ---------------------------------------------------------------------------


@dataclass
class Upgraded:
    to_028: BootstrapRun
    to_029: BootstrapRun
    before: TailnetSnapshot  # on 0.28.0, the laptop joined
    after: TailnetSnapshot  # on 0.29.2, the homelab back
    copies: list[str]
    uploaded: list[str]
    stamp: str
    home_ping: str


@pytest.fixture(scope="module")
def upgraded(upgrade_lab: Lab, refused: Refused) -> Upgraded:
    lab = upgrade_lab
    to_028 = lab.deploy_headscale("0.28.0")
    lab.join_machine("laptop", LAPTOP)
    homelab_back(lab)
    before = tailnet_snapshot(lab)
    to_029 = lab.deploy_headscale("0.29.2")
    homelab_back(lab)
    state = lab.edge.volume / "headscale-lib"
    assert lab.store is not None
    return Upgraded(
        to_028=to_028,
        to_029=to_029,
        before=before,
        after=tailnet_snapshot(lab),
        copies=sorted(path.name for path in (state / "pre-upgrade").iterdir()),
        uploaded=sorted(item["key"] for item in lab.store.objects(f"{PREFIX}/pre-upgrade/")),
        stamp=(state / ".homelab-tunnel-headscale-version").read_text(),
        home_ping=lab.home.node.ping(lab.config.name),
    )


def test_one_minor_release_at_a_time_is_allowed(upgraded: Upgraded) -> None:
    assert upgraded.to_028.step("upgrade-guard").startswith(
        "upgrade guard: Headscale 0.27.1 (stamp /var/lib/headscale/"
        ".homelab-tunnel-headscale-version) -> 0.28.0: allowed; database copied to "
    )
    assert upgraded.to_029.step("upgrade-guard").startswith(
        "upgrade guard: Headscale 0.28.0 (stamp /var/lib/headscale/"
        ".homelab-tunnel-headscale-version) -> 0.29.2: allowed; database copied to "
    )
    assert upgraded.stamp == "0.29.2\n"


def test_a_copy_of_the_old_database_is_kept_on_the_volume_and_in_the_bucket(
    upgraded: Upgraded,
) -> None:
    assert [name[: len("0.27.1-to-0.28.0-")] for name in upgraded.copies] == [
        "0.27.1-to-0.28.0-",
        "0.28.0-to-0.29.2-",
    ]
    assert upgraded.uploaded == [f"{PREFIX}/pre-upgrade/{name}" for name in upgraded.copies]


def test_every_node_is_intact(upgraded: Upgraded) -> None:
    """Ids, users, machine and node keys, addresses: the laptop 0.28 registered among them."""
    assert upgraded.after.nodes == upgraded.before.nodes
    users = {name: node[1] for name, node in upgraded.after.nodes.items()}
    assert users == {"lab-edge": "edge", "homelab": "homelab", "laptop": "laptop"}


def test_the_homelab_reconnects_without_a_new_key(upgraded: Upgraded, upgrade_lab: Lab) -> None:
    assert upgraded.after.home_key == upgraded.before.home_key
    assert upgraded.after.keys == upgraded.before.keys  # nobody minted one, over ssh or not
    assert f"pong from {upgrade_lab.config.name} (100.64.0.1)" in upgraded.home_ping
