"""Terraform on a synthesized stack, as the workflows run it: init, plan to a file, show, apply it.

The saved plan holds every value of the plan in clear, sensitive ones
included (the webhook URL, the backup bucket's key), and so does its JSON:
the plan lives in a private temporary folder removed afterwards, and its JSON
is only ever read from Terraform's output, never written down.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


class StepFailed(Exception):
    """A Terraform command exited non-zero; its own output has said why."""

    def __init__(self, step: str, returncode: int) -> None:
        self.step = step
        self.returncode = returncode
        super().__init__(f"terraform {step} failed (exit {returncode})")


@dataclass(frozen=True)
class Terraform:
    executable: str
    stack_dir: Path
    env: Mapping[str, str]

    def _run(self, *args: str, capture: bool = False) -> str:
        """Terraform's own output goes to the terminal, except what is `capture`d."""
        done = subprocess.run(
            [self.executable, *args],
            cwd=self.stack_dir,
            env=dict(self.env),
            stdout=subprocess.PIPE if capture else None,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise StepFailed(args[0], done.returncode)
        return done.stdout or ""

    def init(self) -> None:
        self._run("init", "-input=false")

    def plan(self, plan_file: Path) -> None:
        self._run("plan", "-input=false", "-lock-timeout=5m", f"-out={plan_file}")

    def show_json(self, plan_file: Path) -> str:
        return self._run("show", "-json", str(plan_file), capture=True)

    def apply(self, plan_file: Path) -> None:
        """Exactly the saved plan: Terraform refuses it if the state moved since."""
        self._run("apply", "-input=false", "-lock-timeout=5m", str(plan_file))


@contextmanager
def private_plan_file() -> Iterator[Path]:
    """A path for the saved plan in a folder only this user can read, gone afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="homelab-tunnel-plan-"))  # mode 0700
    try:
        yield folder / "edge.tfplan"
    finally:
        shutil.rmtree(folder, ignore_errors=True)
