"""`homelab-tunnel snapshot`: the state volume before a risky apply; the newest few kept."""

from __future__ import annotations

from typing import Any

import pytest
from support.config import EXAMPLE
from support.fake_digitalocean import TOKEN, FakeDigitalOcean
from support.fake_digitalocean.volumes import _create
from typer.testing import CliRunner

from homelab_tunnel.cli import app

VOLUME = "homelab-edge-state"


def _cli(fake: FakeDigitalOcean, *args: str) -> Any:
    runner = CliRunner(
        env={
            "COLUMNS": "200",
            "NO_COLOR": "1",
            "DIGITALOCEAN_TOKEN": TOKEN,
            "DIGITALOCEAN_API_URL": fake.url,
        }
    )
    return runner.invoke(app, ["snapshot", "--config", str(EXAMPLE), *args])


@pytest.fixture
def volume(fake: FakeDigitalOcean) -> dict[str, Any]:
    _create(fake.state, {"name": VOLUME, "region": "fra1", "size_gigabytes": 5})
    return fake.state.volumes[-1]


def _names(fake: FakeDigitalOcean) -> list[str]:
    return sorted(s["name"] for s in fake.state.snapshots.values())


def test_a_snapshot_is_taken_and_named_for_its_reason(
    fake: FakeDigitalOcean, volume: dict[str, Any]
) -> None:
    result = _cli(fake, "--reason", "pre-apply")
    assert result.exit_code == 0, result.output
    (name,) = _names(fake)
    assert name.startswith(f"{VOLUME}-") and name.endswith("-pre-apply")
    assert result.stdout.splitlines()[0] == f"ok: snapshot: {name} of volume {VOLUME} taken"
    (snapshot,) = fake.state.snapshots.values()
    assert snapshot["resource_id"] == volume["id"]
    assert "homelab-tunnel-snapshot" in snapshot["tags"]


def test_only_the_newest_of_this_tools_snapshots_are_kept(
    fake: FakeDigitalOcean, volume: dict[str, Any]
) -> None:
    fake.state.snapshots["by-hand"] = {
        "id": "by-hand", "name": "my own snapshot", "created_at": "2026-01-01T00:00:00Z",
        "resource_id": volume["id"], "resource_type": "volume", "tags": [],
    }  # fmt: skip
    for reason in ("one", "two", "three", "four"):
        result = _cli(fake, "--reason", reason)
        assert result.exit_code == 0, result.output
    ours = [n for n in _names(fake) if n.startswith(VOLUME)]
    assert {n.rsplit("-", 1)[1] for n in ours} == {"two", "three", "four"}  # keep 3
    assert "my own snapshot" in _names(fake)  # never one this tool did not take


def test_without_the_volume_nothing_is_taken(fake: FakeDigitalOcean) -> None:
    result = _cli(fake)
    assert result.exit_code == 1
    assert "expected one volume named homelab-edge-state in fra1, found 0" in result.stdout
    assert _names(fake) == []


def test_a_reason_is_one_word(fake: FakeDigitalOcean) -> None:
    result = _cli(fake, "--reason", "before apply; rm -rf")
    assert result.exit_code == 2
    assert result.stderr.startswith("--reason: 'before apply; rm -rf': 1-20 lowercase letters")
