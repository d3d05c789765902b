"""`diff` and `deploy`: everything up to and around the Terraform calls, with a stand-in Terraform.

The stand-in records each call (arguments, working directory, the plan
folder's mode), saves a plan file and shows a recorded plan document, so the
gates judge real `terraform show -json` output. The real Terraform with the
real provider runs the same commands in tests/test_wheel.py where it is built.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.config import DATA, write_config
from support.fake_digitalocean import TOKEN, FakeDigitalOcean
from support.fake_digitalocean.volumes import _create
from support.terminal import Terminal
from support.terraform_standin import StandIn, install_standin
from typer.testing import CliRunner, Result

from homelab_tunnel.cli import app

PLANS = DATA / "plans"
VOLUME = "homelab-edge-state"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A folder holding the example config without backups (no Spaces keys needed)."""
    folder = tmp_path / "project"
    folder.mkdir()
    write_config(folder, backup={"enabled": False})
    return folder


@pytest.fixture
def standin(tmp_path: Path) -> StandIn:
    return install_standin(tmp_path / "bin", plan=PLANS / "create.json")


@pytest.fixture
def fake(
    certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> Iterator[FakeDigitalOcean]:
    cert, key = certificate
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    with FakeDigitalOcean(cert, key) as server:
        yield server


def _env(standin: StandIn | None, **extra: str | None) -> dict[str, str | None]:
    path = str(standin.folder) if standin else str(standin_free_path())
    return {
        "PATH": path,
        "COLUMNS": "200",
        "NO_COLOR": "1",
        "DIGITALOCEAN_TOKEN": TOKEN,
        "DIGITALOCEAN_ACCESS_TOKEN": None,
        "DIGITALOCEAN_API_URL": None,
        # Every edge has a config bucket, made with the operator's Spaces key.
        "SPACES_ACCESS_KEY_ID": "spaces-id",
        "SPACES_SECRET_ACCESS_KEY": "spaces-secret",
        **extra,
    }


def standin_free_path() -> Path:
    return Path(sys.executable).parent  # python, the CLI: no terraform there


def _run(project: Path, standin: StandIn | None, *args: str, **env: str | None) -> Result:
    runner = CliRunner(env=_env(standin, **env))
    cwd = Path.cwd()
    os.chdir(project)
    try:
        return runner.invoke(app, [*args, "--config", "edge.toml"])
    finally:
        os.chdir(cwd)


def _stack_dir(project: Path) -> str:
    return str(project / "cdktf.out" / "stacks" / "homelab-edge")


# ---------------------------------------------------------------------------
# What must be installed, checked first
# ---------------------------------------------------------------------------


def test_every_missing_piece_is_named_once_before_anything_runs(project: Path) -> None:
    write_config(
        project,
        backup={"enabled": True},
        backend={"type": "spaces", "bucket": "st8", "key": "e/terraform.tfstate", "region": "fra1"},
    )
    result = _run(
        project, None, "diff", DIGITALOCEAN_TOKEN=None, SPACES_ACCESS_KEY_ID=None,
        SPACES_SECRET_ACCESS_KEY=None,
    )  # fmt: skip
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert [line.split(": ")[1] for line in lines] == [
        "terraform",
        "DIGITALOCEAN_TOKEN",
        "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY",
        "SPACES_ACCESS_KEY_ID, SPACES_SECRET_ACCESS_KEY",
    ]
    assert lines[0].startswith(
        "diff: terraform: not found on PATH; install Terraform 1.10 or later"
    )
    assert not (project / "cdktf.out").exists()


def test_with_every_piece_present_nothing_is_missing(project: Path, standin: StandIn) -> None:
    keys = {name: "x" for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    keys |= {name: "y" for name in ("SPACES_ACCESS_KEY_ID", "SPACES_SECRET_ACCESS_KEY")}
    write_config(
        project,
        backup={"enabled": True},
        backend={"type": "spaces", "bucket": "st8", "key": "e/terraform.tfstate", "region": "fra1"},
    )
    result = _run(project, standin, "diff", **keys)
    assert result.exit_code == 0, result.output
    assert result.stderr == ""


def test_a_terraform_older_than_1_10_is_named_with_its_version(
    project: Path, standin: StandIn
) -> None:
    standin.configure(plan=PLANS / "create.json", version="1.9.8")
    result = _run(project, standin, "diff")
    assert result.exit_code == 2
    assert result.stderr == (
        f"diff: terraform: {standin.folder}/terraform is 1.9.8; install Terraform 1.10 or later "
        "(https://developer.hashicorp.com/terraform/install)\n"
    )
    assert standin.commands() == ["version"]


def test_deploy_without_a_terminal_needs_yes_and_runs_nothing(
    project: Path, standin: StandIn
) -> None:
    result = _run(project, standin, "deploy")
    assert result.exit_code == 2
    assert (
        result.stderr == "deploy: no terminal to confirm on; pass --yes to apply without asking\n"
    )
    assert standin.calls() == []
    assert not (project / "cdktf.out").exists()


# ---------------------------------------------------------------------------
# diff: plan in the synthesized stack, summary of exactly that plan
# ---------------------------------------------------------------------------


def test_diff_plans_the_synthesized_stack_into_a_private_file_and_summarizes_it(
    project: Path, standin: StandIn
) -> None:
    result = _run(project, standin, "diff")
    assert result.exit_code == 0, result.output
    assert f"synthesized {_stack_dir(project)}/cdk.tf.json" in result.stdout
    assert "verdict: safe: only creations and in-place updates" in result.stdout
    calls = standin.calls()
    assert [call["args"][0] for call in calls] == ["version", "init", "plan", "show"]
    assert all(call["cwd"] == _stack_dir(project) for call in calls[1:])
    plan_arg = next(a for a in calls[2]["args"] if a.startswith("-out="))
    plan_file = Path(plan_arg.removeprefix("-out="))
    assert calls[3]["args"] == ["show", "-json", str(plan_file)]
    assert calls[2]["plan_folder_mode"] == "0o700"
    assert not plan_file.parent.exists()  # the plan (it holds secrets) is gone
    assert not plan_file.is_relative_to(project)


def test_diff_honours_fail_on(project: Path, standin: StandIn) -> None:
    standin.configure(plan=PLANS / "user-data-change.json")
    result = _run(project, standin, "diff", "--fail-on", "downtime")
    assert result.exit_code == 1
    assert "terraform plan: refusing a downtime change (--fail-on downtime)" in result.stdout


def test_diff_passes_a_plan_below_the_threshold(project: Path, standin: StandIn) -> None:
    standin.configure(plan=PLANS / "user-data-change.json")
    result = _run(project, standin, "diff", "--fail-on", "exposure")
    assert result.exit_code == 0, result.output
    assert "refusing" not in result.stdout


def test_a_failed_terraform_step_stops_with_its_name(project: Path, standin: StandIn) -> None:
    standin.configure(plan=PLANS / "create.json", fail="plan")
    result = _run(project, standin, "deploy", "--yes")
    assert result.exit_code == 1
    assert "terraform plan failed (exit 1) (its output is above); nothing was applied" in (
        result.stdout
    )
    assert standin.commands() == ["version", "init", "plan"]


# ---------------------------------------------------------------------------
# deploy: the gates, the snapshot, apply of exactly the saved plan
# ---------------------------------------------------------------------------


def test_deploy_applies_exactly_the_plan_it_showed(project: Path, standin: StandIn) -> None:
    result = _run(project, standin, "deploy", "--yes")
    assert result.exit_code == 0, result.output
    calls = standin.calls()
    assert [call["args"][0] for call in calls] == ["version", "init", "plan", "show", "apply"]
    plan_file = calls[3]["args"][-1]
    assert calls[4]["args"] == ["apply", "-input=false", "-lock-timeout=5m", plan_file]
    assert calls[4]["cwd"] == _stack_dir(project)
    assert not Path(plan_file).parent.exists()


def test_deploy_refuses_a_data_loss_plan_and_applies_nothing(
    project: Path, standin: StandIn
) -> None:
    standin.configure(plan=PLANS / "volume-removed.json")
    result = _run(project, standin, "deploy", "--yes")
    assert result.exit_code == 1
    assert "verdict: DATA LOSS" in result.stdout
    assert (
        "terraform plan: refusing a data loss change (--fail-on data-loss); nothing was applied"
        in result.stdout
    )
    assert "apply" not in standin.commands()


def test_deploy_fail_on_sets_a_stricter_gate(project: Path, standin: StandIn) -> None:
    standin.configure(plan=PLANS / "user-data-change.json")
    result = _run(project, standin, "deploy", "--yes", "--fail-on", "downtime")
    assert result.exit_code == 1, result.output
    assert "refusing a downtime change (--fail-on downtime); nothing was applied" in result.stdout
    assert "apply" not in standin.commands()


def test_the_default_gate_lets_a_plan_without_data_loss_through(
    project: Path, standin: StandIn
) -> None:
    standin.configure(plan=PLANS / "firewall-in-place.json")
    result = _run(project, standin, "deploy", "--yes")
    assert result.exit_code == 0, result.output
    assert standin.commands()[-1] == "apply"


def test_nothing_to_apply_applies_nothing(project: Path, standin: StandIn) -> None:
    standin.configure(plan=PLANS / "noop.json")
    result = _run(project, standin, "deploy", "--yes")
    assert result.exit_code == 0, result.output
    assert "nothing to apply" in result.stdout
    assert "apply" not in standin.commands()


def test_allow_data_loss_and_fail_on_exclude_each_other(project: Path, standin: StandIn) -> None:
    result = _run(project, standin, "deploy", "--yes", "--allow-data-loss", "--fail-on", "exposure")
    assert result.exit_code == 2
    assert standin.calls() == []


def _volume(fake: FakeDigitalOcean) -> dict[str, Any]:
    _create(fake.state, {"name": VOLUME, "region": "fra1", "size_gigabytes": 5})
    return fake.state.volumes[-1]


def test_a_plan_that_replaces_the_droplet_gets_a_snapshot_then_is_applied(
    project: Path, standin: StandIn, fake: FakeDigitalOcean
) -> None:
    volume = _volume(fake)
    standin.configure(plan=PLANS / "user-data-change.json")
    result = _run(project, standin, "deploy", "--yes", DIGITALOCEAN_API_URL=fake.url)
    assert result.exit_code == 0, result.output
    (snapshot,) = fake.state.snapshots.values()
    assert snapshot["resource_id"] == volume["id"]
    assert snapshot["name"].endswith("-pre-apply")
    assert f"ok: snapshot: {snapshot['name']} of volume {VOLUME} taken" in result.stdout
    assert standin.commands()[-1] == "apply"


def test_no_snapshot_no_apply_when_the_plan_asks_for_one(
    project: Path, standin: StandIn, fake: FakeDigitalOcean
) -> None:
    standin.configure(plan=PLANS / "user-data-change.json")  # and no volume in the account
    result = _run(project, standin, "deploy", "--yes", DIGITALOCEAN_API_URL=fake.url)
    assert result.exit_code == 1
    assert f"expected one volume named {VOLUME} in fra1, found 0" in result.stdout
    assert "the plan asks for a snapshot first and none was taken; nothing was applied" in (
        result.stdout
    )
    assert "apply" not in standin.commands()


def test_a_plan_that_keeps_the_droplet_takes_no_snapshot(
    project: Path, standin: StandIn, fake: FakeDigitalOcean
) -> None:
    _volume(fake)
    standin.configure(plan=PLANS / "firewall-in-place.json")
    result = _run(project, standin, "deploy", "--yes", DIGITALOCEAN_API_URL=fake.url)
    assert result.exit_code == 0, result.output
    assert fake.state.snapshots == {}
    assert standin.commands()[-1] == "apply"


# ---------------------------------------------------------------------------
# At a terminal: the summary, then the question
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(("answer", "applied"), [("y", True), ("n", False)])
def test_at_a_terminal_deploy_asks_after_the_summary(
    project: Path, standin: StandIn, answer: str, applied: bool
) -> None:
    cli = Path(sys.executable).parent / "homelab-tunnel"
    env = {
        "PATH": f"{standin.folder}:{os.environ['PATH']}",
        "HOME": str(project),
        "COLUMNS": "200",
        "NO_COLOR": "1",
        "DIGITALOCEAN_TOKEN": TOKEN,
        "SPACES_ACCESS_KEY_ID": "spaces-id",
        "SPACES_SECRET_ACCESS_KEY": "spaces-secret",
    }
    argv = [str(cli), "deploy", "--config", "edge.toml"]
    with Terminal(argv, cwd=project, env=env, timeout=120) as term:
        shown = term.answer("Apply exactly this plan? [y/N]", answer)
        assert "verdict: safe" in shown
        assert "apply" not in standin.commands()  # asked before anything is applied
        assert term.wait() == (0 if applied else 1), term.screen
    assert ("apply" in standin.commands()) is applied
    if not applied:
        assert "not applied: the answer was no" in term.screen
