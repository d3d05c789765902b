"""plan.yml and apply.yml, their own scripts run as GitHub's runner runs them.

Every `run:` step goes through tests/support/github_runner.py: the script in a
file, under the shell GitHub would use, steps skipped after a failure unless
`always()`. The real plan-summary (and jq, tee, mv) run; `terraform`, `make`
and `homelab-tunnel snapshot` are stand-ins that log each call, do their
work, and fail when FAIL names them (after printing their output, the case
a pipe hides). Each failure case has a twin run under plain `bash -e`, the
shell GitHub uses when a workflow names none: there the same failure goes
unnoticed, which is why both workflows set `shell: bash`.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support.config import ROOT
from support.github_runner import (
    PIPEFAIL,
    JobRun,
    Runner,
    command_line,
    load_workflow,
    runner,
    shell_of,
)
from support.plans import plan_path

PLAN = ROOT / ".github" / "workflows" / "plan.yml"
APPLY = ROOT / ".github" / "workflows" / "apply.yml"
# Stands for a secret in the plan file and in `terraform show -json` output.
MARK = "SENSITIVE-a8f3e1-in-the-plan"

pytestmark = pytest.mark.skipif(
    shutil.which("jq") is None, reason="jq is not installed (make test installs it from Debian)"
)

TERRAFORM = """#!/usr/bin/env bash
printf 'terraform %s\\n' "$*" >> "$CALLS"
case "$1" in
init) ;;
plan)
  out=""
  for arg in "$@"; do case "$arg" in -out=*) out="${arg#-out=}" ;; esac; done
  [ -n "$out" ] || { echo "stand-in terraform: plan without -out" >&2; exit 98; }
  printf 'plan file holding %s\\n' "$MARK" > "$out" ;;
show)
  if [ "$2" != -json ] || [ ! -f "$3" ]; then
    echo "stand-in terraform: show -json PLANFILE, not: $*" >&2
    exit 98
  fi
  cat "$PLAN_JSON" ;;
apply)
  [ -f "${!#}" ] || { echo "stand-in terraform: no plan file ${!#}" >&2; exit 98; } ;;
*) echo "stand-in terraform: $1 is not expected here" >&2; exit 98 ;;
esac
if [[ -n "$FAIL" && "terraform $*" == "$FAIL"* ]]; then exit 1; fi
"""

MAKE = """#!/usr/bin/env bash
printf 'make %s\\n' "$*" >> "$CALLS"
[ "$1" = synth ] || { echo "stand-in make: $1 is not expected here" >&2; exit 98; }
mkdir -p cdktf.out/stacks/homelab-edge
echo '{"terraform": {"backend": {"s3": {"bucket": "homelab-state"}}}}' \\
  > cdktf.out/stacks/homelab-edge/cdk.tf.json
"""

# The workspace's .venv/bin/homelab-tunnel: the real CLI, but a stand-in snapshot.
HOMELAB_TUNNEL = """#!/usr/bin/env bash
printf 'homelab-tunnel %s\\n' "$*" >> "$CALLS"
case "$1" in
plan-summary)
  status=0
  "$REAL_PYTHON" -c 'from homelab_tunnel.cli import main; main()' "$@" || status=$? ;;
snapshot)
  if [[ "$FAIL" == "homelab-tunnel snapshot"* ]]; then
    echo "homelab-edge-state: DigitalOcean API answered 503 Service Unavailable" >&2
    exit 1
  fi
  echo "snapshot homelab-edge-pre-apply-20261129T210000Z of volume homelab-edge-state"
  status=0 ;;
*) echo "stand-in homelab-tunnel: $1 is not expected here" >&2; exit 98 ;;
esac
if [[ -n "$FAIL" && "homelab-tunnel $*" == "$FAIL"* ]]; then exit 1; fi
exit "$status"
"""

# What FAIL may name; anything else is a typo that would run the happy path.
FAILURES = {
    "",
    "terraform show",
    "homelab-tunnel plan-summary --format json",
    "homelab-tunnel snapshot",
}

JOB_EXPRESSIONS = {
    "${{ vars.HOMELAB_TUNNEL_CONFIG || 'examples/homelab-tunnel.toml' }}": "edge.toml",
    "${{ steps.stack.outputs.dir }}": "cdktf.out/stacks/homelab-edge",
}


@dataclass
class Job:
    run: JobRun
    runner: Runner
    calls: list[str]

    def called(self, prefix: str) -> list[str]:
        return [call for call in self.calls if call.startswith(prefix)]

    def left_behind(self) -> list[str]:
        """Files in the workspace or the runner's temp folder that hold the plan's secret."""
        found = []
        for folder in (self.runner.workspace, self.runner.temp):
            for path in folder.rglob("*"):
                if path.is_file() and MARK in path.read_text(errors="replace"):
                    found.append(str(path.relative_to(folder.parent)))
        return found


def run_job(
    tmp_path: Path,
    workflow: dict[str, Any],
    plan_name: str,
    *,
    fail: str = "",
    shell: Any = "as written",
    allow_data_loss: bool = False,
) -> Job:
    """Run the workflow's only job against a recorded plan, FAIL naming one command to fail."""
    assert fail in FAILURES, f"FAIL={fail!r} is not a declared failure"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(parents=True)
    for name, script in (("terraform", TERRAFORM), ("make", MAKE)):
        (bin_dir / name).write_text(script)
        (bin_dir / name).chmod(0o755)
    document = json.loads(plan_path(plan_name).read_text())
    document["variables"] = {"health_webhook_url": {"value": f"https://hooks.example/{MARK}"}}
    plan_json = tmp_path / "show-output.json"  # what `terraform show -json` prints
    plan_json.write_text(json.dumps(document))
    github = runner(tmp_path, f"{bin_dir}{os.pathsep}/usr/local/bin:/usr/bin:/bin")
    venv = github.workspace / ".venv" / "bin"
    venv.mkdir(parents=True)
    (venv / "homelab-tunnel").write_text(HOMELAB_TUNNEL)
    (venv / "homelab-tunnel").chmod(0o755)
    calls = tmp_path / "calls"
    github.env.update(
        CALLS=str(calls), FAIL=fail, MARK=MARK, PLAN_JSON=str(plan_json),
        REAL_PYTHON=sys.executable, COLUMNS="200", NO_COLOR="1",
    )  # fmt: skip
    allow = "true" if allow_data_loss else "false"
    github.expressions = {
        **JOB_EXPRESSIONS,
        "${{ github.event_name == 'workflow_dispatch' && inputs.allow_data_loss }}": allow,
    }
    (job_id,) = workflow["jobs"]
    result = github.run_job(workflow, job_id, shell=shell)
    logged = calls.read_text().splitlines() if calls.exists() else []
    if fail:
        assert any(call.startswith(fail) for call in logged), f"{fail!r} was never called"
    return Job(result, github, logged)


# ---------------------------------------------------------------------------
# Every step runs with pipefail
# ---------------------------------------------------------------------------


def _without_pipefail(workflow: dict[str, Any]) -> list[str]:
    """Steps whose script has a pipe but whose shell is not GitHub's `bash` (pipefail)."""
    found = []
    for job in workflow["jobs"].values():
        for step in job["steps"]:
            script = step.get("run", "").replace("||", "")
            if "|" in script and shell_of(workflow, job, step) != "bash":
                found.append(step.get("name", script))
    return found


@pytest.mark.parametrize("path", [PLAN, APPLY], ids=["plan", "apply"])
def test_every_step_with_a_pipe_runs_with_pipefail(path: Path) -> None:
    workflow = load_workflow(path)
    assert workflow["defaults"] == {"run": {"shell": "bash"}}
    assert _without_pipefail(workflow) == []
    assert command_line("bash", Path("s.sh")) == [*PIPEFAIL[:-1], "s.sh"]


def test_negative_twin_the_pipefail_check_names_steps_under_the_default_shell() -> None:
    workflow = load_workflow(APPLY)
    del workflow["defaults"]
    assert "Snapshot the state volume" in _without_pipefail(workflow)
    assert "Summarize the plan" in _without_pipefail(workflow)


# ---------------------------------------------------------------------------
# apply.yml: nothing is applied after a step that failed
# ---------------------------------------------------------------------------

APPLY_CALL = "terraform apply -input=false -lock-timeout=5m"


def test_apply_snapshots_then_applies_the_saved_plan_and_forgets_it(tmp_path: Path) -> None:
    job = run_job(tmp_path, load_workflow(APPLY), "user-data-change")
    assert not job.run.failed, job.run.steps
    temp = job.runner.temp
    assert job.called("terraform plan") == [
        f"terraform plan -input=false -lock-timeout=5m -out={temp}/plan.tfplan"
    ]
    assert job.called("homelab-tunnel snapshot") == [
        "homelab-tunnel snapshot --config edge.toml --reason pre-apply"
    ]
    assert job.called(APPLY_CALL) == [f"{APPLY_CALL} {temp}/plan.tfplan"]
    assert job.calls.index(job.called("homelab-tunnel snapshot")[0]) < job.calls.index(
        job.called(APPLY_CALL)[0]
    )
    summary = job.runner.step_summary.read_text()
    assert "snapshot homelab-edge-pre-apply-20261129T210000Z" in summary
    assert job.left_behind() == []


def test_apply_skips_the_snapshot_when_the_plan_keeps_the_state(tmp_path: Path) -> None:
    job = run_job(tmp_path, load_workflow(APPLY), "firewall-in-place")
    assert not job.run.failed, job.run.steps
    assert job.called("homelab-tunnel snapshot") == []
    assert "No volume snapshot: the plan keeps the droplet" in job.runner.step_summary.read_text()
    assert job.called(APPLY_CALL) != []


STOPS_THE_APPLY = {
    "homelab-tunnel snapshot": "Snapshot the state volume",
    "homelab-tunnel plan-summary --format json": "Summarize the plan",
    "terraform show": "Summarize the plan",
}


@pytest.mark.parametrize("fail", list(STOPS_THE_APPLY), ids=list(STOPS_THE_APPLY))
def test_a_failure_before_the_apply_stops_it_and_the_plan_is_forgotten(
    tmp_path: Path, fail: str
) -> None:
    job = run_job(tmp_path, load_workflow(APPLY), "user-data-change", fail=fail)
    assert job.run.failed_at == STOPS_THE_APPLY[fail]
    assert job.called(APPLY_CALL) == []
    assert not job.run.step("terraform apply").ran
    assert job.run.step("Forget the plan").ran
    assert job.left_behind() == []


@pytest.mark.parametrize("fail", list(STOPS_THE_APPLY), ids=list(STOPS_THE_APPLY))
def test_negative_twin_under_bash_e_alone_the_same_failure_is_applied(
    tmp_path: Path, fail: str
) -> None:
    job = run_job(tmp_path, load_workflow(APPLY), "user-data-change", fail=fail, shell=None)
    assert not job.run.failed, job.run.steps
    assert job.called(APPLY_CALL) != []


def test_a_summary_that_cannot_say_whether_to_snapshot_stops_the_apply(tmp_path: Path) -> None:
    github = runner(tmp_path)
    workflow = load_workflow(APPLY)
    job = workflow["jobs"]["apply"]
    (step,) = [s for s in job["steps"] if s.get("name") == "Snapshot the state volume"]
    github.expressions = dict(JOB_EXPRESSIONS)
    done = github.run_step(workflow, {**job, "env": {}}, step)
    assert done.returncode == 1
    assert done.stdout == (
        "::error::the plan summary did not say whether to snapshot first (got '')\n"
    )


def test_apply_refuses_data_loss_before_the_snapshot_unless_allowed(tmp_path: Path) -> None:
    refused = run_job(tmp_path / "refused", load_workflow(APPLY), "volume-removed")
    assert refused.run.failed_at == "Refuse data loss unless allowed"
    assert refused.called("homelab-tunnel snapshot") == refused.called(APPLY_CALL) == []
    assert refused.left_behind() == []
    allowed = run_job(
        tmp_path / "allowed", load_workflow(APPLY), "volume-removed", allow_data_loss=True
    )
    assert not allowed.run.failed, allowed.run.steps
    assert allowed.called("homelab-tunnel snapshot") != [] and allowed.called(APPLY_CALL) != []


# ---------------------------------------------------------------------------
# plan.yml: the comment always, the verdict after it, nothing left behind
# ---------------------------------------------------------------------------

COMMENT = "Comment on the pull request"


def test_the_pr_plan_comments_and_leaves_no_plan_behind(tmp_path: Path) -> None:
    job = run_job(tmp_path, load_workflow(PLAN), "user-data-change")
    assert not job.run.failed, job.run.steps
    assert job.run.step(COMMENT).ran
    summary = (job.runner.temp / "plan-summary.md").read_text()
    assert summary.startswith("### ⏳ Terraform plan: downtime")
    assert job.called("terraform plan") == [
        f"terraform plan -input=false -lock=false -out={job.runner.temp}/plan.tfplan"
    ]
    assert job.left_behind() == []


def test_negative_twin_without_its_last_step_the_plan_file_stays_on_the_runner(
    tmp_path: Path,
) -> None:
    workflow = load_workflow(PLAN)
    steps = workflow["jobs"]["plan"]["steps"]
    assert steps[-1]["name"] == "Forget the plan"
    del steps[-1]
    job = run_job(tmp_path, workflow, "user-data-change")
    assert job.left_behind() == ["runner-temp/plan.tfplan"]


def test_the_pr_plan_turns_red_on_data_loss_after_commenting(tmp_path: Path) -> None:
    job = run_job(tmp_path, load_workflow(PLAN), "volume-removed")
    assert job.run.failed_at == "Refuse data loss"
    names = [step.name for step in job.run.steps]
    assert names.index(COMMENT) < names.index("Refuse data loss")
    assert job.run.step(COMMENT).ran and job.run.step("Forget the plan").ran
    assert job.left_behind() == []


def test_a_failed_terraform_show_leaves_no_summary_so_the_comment_says_it_failed(
    tmp_path: Path,
) -> None:
    job = run_job(tmp_path, load_workflow(PLAN), "user-data-change", fail="terraform show")
    assert job.run.failed_at == "Summarize the plan"
    assert job.run.step(COMMENT).ran  # plan-comment.js reads a missing summary as a failure
    assert not (job.runner.temp / "plan-summary.md").exists()
    assert job.left_behind() == []


def test_negative_twin_under_bash_e_alone_a_failed_show_passes_as_a_summary(
    tmp_path: Path,
) -> None:
    job = run_job(
        tmp_path, load_workflow(PLAN), "user-data-change", fail="terraform show", shell=None
    )
    assert not job.run.failed
    assert (job.runner.temp / "plan-summary.md").exists()
