"""docs/getting-started.md, followed step by step as a new user would, against the fakes.

Each fenced block of the page carries a `<!-- step: NAME -->` marker. The steps
run in order, as written, in one temporary folder and one shell environment
carried from step to step (exports and `cd` persist): the credentials (with the
page's placeholders filled in), `init`, the edit the page asks for, `check`,
`preflight` against the fake DigitalOcean API, `diff` and `deploy` (at a real
pseudo-terminal, answering its question) with a stand-in Terraform that shows a
recorded first-deploy plan (the real DigitalOcean provider cannot be built
here; tests/test_wheel.py runs deploy with it where it is), and both
`join-command` targets. What needs the real world is in SKIPPED, with why.
A page with a renamed flag, an unmarked block or an unknown step fails.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from support.config import DATA, ROOT
from support.fake_digitalocean import TOKEN, FakeDigitalOcean
from support.terminal import Terminal
from support.terraform_standin import install_standin

PAGE = ROOT / "docs" / "getting-started.md"
BIN = ROOT / ".venv" / "bin"

# Steps that need what a test cannot have, and what proves them elsewhere.
SKIPPED = {
    "install": "installs from PyPI; tests/test_wheel.py installs the built wheel in a fresh "
    "virtualenv and runs it outside the checkout",
    "homelab": "runs on the homelab machine and mints its key on the edge over SSH; the lab's "
    "test_joins runs this script against the real Headscale",
    "visit": "needs the public DNS name of a deployed edge; the lab's test_sites serves sites "
    "through the real Caddy and tailnet",
    "doctor": "needs SSH to a running edge; the lab's test_direct runs doctor --ssh on one",
}
RUN = ("credentials", "init", "edit", "check", "preflight", "diff", "deploy", "join", "join-docker")

# The page's placeholders, as a reader replaces them.
PLACEHOLDERS = {"dop_v1_...": TOKEN, "DO00...": "DO00EXAMPLEKEY", "=...": "=example-secret"}


class StepFailed(AssertionError):
    pass


@dataclass(frozen=True)
class Step:
    name: str
    language: str
    text: str


def steps(page: str) -> list[Step]:
    """Every fenced block of the page with its step marker; an unmarked block is an error."""
    found = []
    for match in re.finditer(r"(?:<!-- step: ([a-z-]+) -->\n)?```(\w*)\n(.*?)```", page, re.S):
        name, language, text = match.groups()
        if name is None:
            raise StepFailed(f"a ```{language} block has no step marker:\n{text}")
        if name not in RUN and name not in SKIPPED:
            raise StepFailed(f"step {name!r} is neither run nor skipped by this test")
        found.append(Step(name, language, text))
    return found


def _fill(text: str) -> str:
    for placeholder, value in PLACEHOLDERS.items():
        text = text.replace(placeholder, value)
    return text


class Reader:
    """One shell session, as the reader's: a folder, an environment, steps in order."""

    def __init__(self, home: Path, env: dict[str, str]) -> None:
        self.home = home
        self.state = home / ".session"
        self.state.write_text(f"cd {shlex.quote(str(home))}\n")
        self.env = env
        self.cwd = home

    def _script(self, step: Step) -> str:
        return (
            f"set -euo pipefail\nsource {shlex.quote(str(self.state))}\n{_fill(step.text)}\n"
            f'{{ export -p; printf "cd %q\\n" "$PWD"; }} > {shlex.quote(str(self.state))}\n'
        )

    def _after(self) -> None:
        self.cwd = Path(self.state.read_text().splitlines()[-1].removeprefix("cd ").strip("'"))

    def run(self, step: Step) -> str:
        done = subprocess.run(
            ["bash", "-c", self._script(step)], cwd=self.home, env=self.env,
            capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise StepFailed(
                f"step {step.name} exited {done.returncode}:\n{done.stdout}{done.stderr}"
            )
        self._after()
        return done.stdout

    def run_at_terminal(self, step: Step, prompt: str, answer: str) -> str:
        script = ["bash", "-c", self._script(step)]
        with Terminal(script, cwd=self.home, env=self.env, timeout=600) as terminal:
            terminal.answer(prompt, answer)
            code = terminal.wait()
        if code != 0:
            raise StepFailed(f"step {step.name} exited {code}:\n{terminal.screen}")
        self._after()
        return terminal.screen

    def edit(self, step: Step, file: str) -> None:
        """Set each `key = value` of the block in the config, as the page asks."""
        path = self.cwd / file
        text = path.read_text()
        for line in step.text.splitlines():
            key = line.split("=", 1)[0].strip()
            text, count = re.subn(rf"(?m)^#? ?{re.escape(key)} = .*$", line, text, count=1)
            if count != 1:
                raise StepFailed(f"step {step.name}: {file} has no line for {key!r}")
        path.write_text(text)
        tomllib.loads(text)


def follow(page: str, home: Path, env: dict[str, str]) -> dict[str, str]:
    """Run the page's steps in order; what each printed, by step name."""
    reader = Reader(home, env)
    printed: dict[str, str] = {}
    for step in steps(page):
        if step.name in SKIPPED:
            continue
        if step.name == "edit":
            reader.edit(step, "homelab-tunnel.toml")
        elif step.name == "deploy":
            printed[step.name] = reader.run_at_terminal(step, "Apply exactly this plan?", "y")
        else:
            printed[step.name] = reader.run(step)
    return printed


@pytest.fixture
def world(tmp_path: Path, certificate: tuple[Path, Path]) -> dict[str, object]:
    """The reader's machine: the tool on PATH, a stand-in Terraform, the fake account."""
    standin = install_standin(tmp_path / "terraform", plan=DATA / "plans" / "create.json")
    cert, key = certificate
    home = tmp_path / "home"
    home.mkdir()
    env = {
        "PATH": f"{BIN}:{standin.folder}:/usr/bin:/bin",
        "HOME": str(home),
        "COLUMNS": "120",
        "NO_COLOR": "1",
        "REQUESTS_CA_BUNDLE": str(cert),
        "NO_PROXY": "127.0.0.1",
    }
    return {"home": home, "env": env, "standin": standin, "cert": cert, "key": key}


def test_every_step_of_the_page_is_run_or_skipped_with_a_reason() -> None:
    names = [step.name for step in steps(PAGE.read_text())]
    assert sorted(names) == sorted([*RUN, *SKIPPED])
    assert names.index("preflight") < names.index("deploy") < names.index("join")


def test_getting_started_works_as_written(world: dict[str, object]) -> None:
    home, env = world["home"], world["env"]
    assert isinstance(home, Path) and isinstance(env, dict)
    with FakeDigitalOcean(world["cert"], world["key"]) as api:  # type: ignore[arg-type]
        env["DIGITALOCEAN_API_URL"] = api.url
        printed = follow(PAGE.read_text(), home, env)
    edge = home / "my-edge"
    config = tomllib.loads((edge / "homelab-tunnel.toml").read_text())
    assert config["name"] == "my-edge"
    assert config["ssh_keys"] == ["homelab-admin"]
    assert "homelab-tunnel.toml is valid" in printed["check"]
    assert "0 problem(s)" in printed["preflight"].splitlines()[-1]
    assert "verdict:" in printed["diff"]
    assert world["standin"].commands()[-1] == "apply"  # type: ignore[attr-defined]
    join = (edge / "join.sh").read_text()
    assert "tailscale up --login-server https://headscale.example.com" in join
    assert subprocess.run(["bash", "-n", str(edge / "join.sh")], check=False).returncode == 0
    compose = yaml.safe_load((edge / "compose.yaml").read_text())
    (service,) = compose["services"].values()
    assert service["image"].startswith("tailscale/tailscale:")


def test_a_renamed_flag_on_the_page_fails(world: dict[str, object]) -> None:
    page = PAGE.read_text().replace("--zone example.com", "--dns-zone example.com")
    with pytest.raises(StepFailed, match="step init exited 2"):
        follow(page, world["home"], world["env"])  # type: ignore[arg-type]


def test_a_block_without_a_marker_fails() -> None:
    page = PAGE.read_text().replace("<!-- step: check -->\n", "")
    with pytest.raises(StepFailed, match="has no step marker"):
        steps(page)


def test_a_key_the_config_does_not_have_fails(world: dict[str, object]) -> None:
    page = PAGE.read_text().replace('ssh_keys = ["homelab-admin"]', 'ssh_key = ["homelab-admin"]')
    with pytest.raises(StepFailed, match="has no line for 'ssh_key'"):
        follow(page, world["home"], world["env"])  # type: ignore[arg-type]
