"""A stand-in `terraform` on PATH: records every call, saves a plan file, shows a recorded plan.

For the steps around Terraform (what runs, where, in which order, with which
plan file, what the gates let through) where the real provider cannot run.
Its settings are declared fields in a file beside it; an unknown field or an
unknown command fails loudly instead of quietly running the happy path.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCRIPT = """#!{python}
import json, os, stat, sys
from pathlib import Path

here = Path(__file__).resolve().parent
settings = json.loads((here / "terraform.settings.json").read_text())
assert set(settings) == {{"version", "plan", "fail"}}, settings
args = sys.argv[1:]
command = args[0] if args else ""
if command not in ("version", "init", "plan", "show", "apply"):
    print(f"stand-in terraform: unknown command {{command!r}}", file=sys.stderr)
    sys.exit(64)
entry = {{"args": args, "cwd": os.getcwd()}}
plan_file = None
if command == "plan":
    plan_file = Path(next(a.removeprefix("-out=") for a in args if a.startswith("-out=")))
elif command in ("show", "apply"):
    plan_file = Path(args[-1])
if plan_file is not None:
    entry["plan_folder_mode"] = oct(stat.S_IMODE(plan_file.parent.stat().st_mode))
with (here / "terraform.record.jsonl").open("a") as record:
    record.write(json.dumps(entry) + "\\n")
if command == settings["fail"]:
    print(f"stand-in terraform: {{command}} fails", file=sys.stderr)
    sys.exit(1)
saved = "saved plan of " + str(settings["plan"])
if command == "version":
    print(json.dumps({{"terraform_version": settings["version"], "platform": "linux_amd64"}}))
elif command == "plan":
    plan_file.write_text(saved)
elif command in ("show", "apply"):
    if plan_file.read_text() != saved:
        print(f"stand-in terraform: {{plan_file}} is not the saved plan", file=sys.stderr)
        sys.exit(1)
    if command == "show":
        sys.stdout.write(Path(settings["plan"]).read_text())
"""


@dataclass(frozen=True)
class StandIn:
    folder: Path

    def configure(self, *, plan: Path, version: str = "1.11.4", fail: str | None = None) -> None:
        settings = {"version": version, "plan": str(plan), "fail": fail}
        (self.folder / "terraform.settings.json").write_text(json.dumps(settings))

    def calls(self) -> list[dict[str, Any]]:
        record = self.folder / "terraform.record.jsonl"
        if not record.exists():
            return []
        return [json.loads(line) for line in record.read_text().splitlines()]

    def commands(self) -> list[str]:
        return [call["args"][0] for call in self.calls()]


def install_standin(folder: Path, *, plan: Path) -> StandIn:
    """`folder/terraform`, run by this interpreter; put `folder` first on PATH."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "terraform"
    script.write_text(SCRIPT.format(python=sys.executable))
    script.chmod(0o755)
    standin = StandIn(folder)
    standin.configure(plan=plan)
    return standin
