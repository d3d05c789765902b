"""A workflow job's `run:` steps, run the way GitHub's runner runs them.

What it reproduces (GitHub's "Workflow syntax" page: `defaults.run`,
`jobs.<job_id>.steps[*].shell`, `if`; and its status check functions):

- each script is written to a file and run as `bash -e {0}`, or as
  `bash --noprofile --norc -eo pipefail {0}` when `shell: bash` is set on the
  step or in the job's or the workflow's `defaults.run`;
- a step without `if:` runs only while every step before it succeeded;
  `always()` and `!cancelled()` run it anyway (nothing here is cancelled);
- `$GITHUB_OUTPUT` lines become `steps.<id>.outputs.*` and `$GITHUB_ENV`
  lines the environment of the steps after it.

`uses:` steps are not run; the result says whether the runner would have
started them. Only the expressions given to it (plus `secrets.*`, the
`!= ''` presence test and `steps.<id>.outputs.*`) are understood: any other
is refused, so a new expression never quietly evaluates to nothing.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

# What GitHub runs for `shell: bash` and for no shell at all (bash found on PATH).
PIPEFAIL = ("bash", "--noprofile", "--norc", "-eo", "pipefail", "{0}")
DEFAULT = ("bash", "-e", "{0}")
SHELLS = {"bash": PIPEFAIL, None: DEFAULT}
ALWAYS = {"${{ always() }}", "always()", "${{ !cancelled() }}", "!cancelled()"}
_EXPRESSION = re.compile(r"\$\{\{.*?\}\}")
_SECRET = re.compile(r"\$\{\{ secrets\.(\w+) \}\}")
_PRESENCE = re.compile(r"\$\{\{ secrets\.(\w+) != '' \}\}")
_OUTPUT = re.compile(r"\$\{\{ steps\.([\w-]+)\.outputs\.(\w+) \}\}")


def load_workflow(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(path.read_text())
    # YAML 1.1 reads the bare key `on` as boolean true.
    document["on"] = document.pop(True, document.get("on"))
    return document


def shell_of(workflow: Mapping[str, Any], job: Mapping[str, Any], step: Mapping[str, Any]) -> Any:
    """The `shell:` GitHub applies to a step: its own, else the job's, else the workflow's."""
    for source in (
        step,
        job.get("defaults", {}).get("run", {}),
        workflow.get("defaults", {}).get("run", {}),
    ):
        if "shell" in source:
            return source["shell"]
    return None


def command_line(shell: Any, script: Path) -> list[str]:
    if shell not in SHELLS:
        raise ValueError(f"shell {shell!r}: this stand-in knows only bash and the default")
    return [str(script) if part == "{0}" else part for part in SHELLS[shell]]


@dataclass
class StepRun:
    name: str
    ran: bool
    returncode: int | None = None
    stdout: str = ""
    stderr: str = ""


@dataclass
class JobRun:
    steps: list[StepRun] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(step.ran and step.returncode not in (0, None) for step in self.steps)

    def step(self, name: str) -> StepRun:
        (found,) = [step for step in self.steps if step.name == name]
        return found

    @property
    def failed_at(self) -> str | None:
        return next((s.name for s in self.steps if s.ran and s.returncode not in (0, None)), None)


@dataclass
class Runner:
    """One job's surroundings: the workspace, the runner's folders, the environment."""

    workspace: Path
    temp: Path
    files: Path  # where the runner keeps GITHUB_OUTPUT, GITHUB_ENV, GITHUB_STEP_SUMMARY
    env: dict[str, str]
    expressions: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, dict[str, str]] = field(default_factory=dict)
    exported: dict[str, str] = field(default_factory=dict)

    @property
    def step_summary(self) -> Path:
        return self.files / "step_summary"

    def evaluate(self, text: Any) -> str:
        def one(match: re.Match[str]) -> str:
            expression = match.group()
            if expression in self.expressions:
                return self.expressions[expression]
            if secret := _SECRET.fullmatch(expression):
                return f"secret-{secret[1]}"
            if _PRESENCE.fullmatch(expression):
                return "true"
            if output := _OUTPUT.fullmatch(expression):
                return self.outputs.get(output[1], {}).get(output[2], "")
            raise ValueError(f"expression {expression} is not one this stand-in knows")

        return _EXPRESSION.sub(one, str(text))

    def run_step(
        self, workflow: Mapping[str, Any], job: Mapping[str, Any], step: Mapping[str, Any],
        *, shell: Any = "as written",
    ) -> StepRun:  # fmt: skip
        """One `run:` step; `shell` overrides the one the workflow gives it."""
        name = step.get("name", step.get("run", ""))
        script = self.files / "script.sh"
        script.write_text(step["run"])
        output, exported = self.files / "output", self.files / "env"
        output.write_text("")
        exported.write_text("")
        env = {
            **self.env,
            "GITHUB_WORKSPACE": str(self.workspace),
            "RUNNER_TEMP": str(self.temp),
            "GITHUB_OUTPUT": str(output),
            "GITHUB_ENV": str(exported),
            "GITHUB_STEP_SUMMARY": str(self.step_summary),
            **self.exported,
            **{key: self.evaluate(value) for key, value in job.get("env", {}).items()},
            **{key: self.evaluate(value) for key, value in step.get("env", {}).items()},
        }
        where = self.workspace / self.evaluate(step.get("working-directory", "."))
        chosen = shell_of(workflow, job, step) if shell == "as written" else shell
        done = subprocess.run(
            command_line(chosen, script), cwd=where, env=env, capture_output=True, text=True,
            timeout=120, check=False,
        )  # fmt: skip
        if "id" in step:
            self.outputs[step["id"]] = _pairs(output.read_text())
        self.exported.update(_pairs(exported.read_text()))
        return StepRun(name, True, done.returncode, done.stdout, done.stderr)

    def run_job(
        self, workflow: Mapping[str, Any], job_id: str, *, shell: Any = "as written"
    ) -> JobRun:
        job = workflow["jobs"][job_id]
        result = JobRun()
        for step in job["steps"]:
            name = step.get("name", step.get("uses", step.get("run", "")))
            condition = step.get("if")
            if condition is not None and condition not in ALWAYS:
                raise ValueError(f"step {name!r}: if {condition!r} is not one this stand-in knows")
            if result.failed and condition is None:
                result.steps.append(StepRun(name, False))
            elif "uses" in step:
                result.steps.append(StepRun(name, True, None))  # would start; not run here
            else:
                result.steps.append(self.run_step(workflow, job, step, shell=shell))
        return result


def _pairs(text: str) -> dict[str, str]:
    """`name=value` lines, as the runner reads $GITHUB_OUTPUT and $GITHUB_ENV."""
    found = {}
    for line in text.splitlines():
        if "<<" in line.split("=", 1)[0]:
            raise ValueError(f"multi-line values ({line!r}) are not understood by this stand-in")
        name, _, value = line.partition("=")
        found[name] = value
    return found


def runner(tmp_path: Path, path: str = os.defpath) -> Runner:
    """A fresh workspace, temp and file-command folder under `tmp_path`."""
    folders = [tmp_path / name for name in ("workspace", "runner-temp", "runner-files")]
    for folder in folders:
        folder.mkdir()
    return Runner(*folders, env={"PATH": path, "HOME": str(tmp_path)})
