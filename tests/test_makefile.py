"""The Makefile passes CONFIG, OUT and HOMELAB_TUNNEL_CONFIG as data, never as shell or make code.

Run with the real `make` on a copy of the Makefile whose tools are fakes that
record exactly the arguments and environment they receive.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from support.config import ROOT

MAKE = shutil.which("make")
pytestmark = pytest.mark.skipif(MAKE is None, reason="make is not installed")

RECORDER = """#!/bin/sh
# Records each argument (and the config variable cdktf reads), one per line.
{ printf '%s\\n' "$(basename "$0")"; for arg in "$@"; do printf '[%s]\\n' "$arg"; done
  printf 'HOMELAB_TUNNEL_CONFIG=[%s]\\n' "${HOMELAB_TUNNEL_CONFIG-unset}"; } >> "$RECORD"
"""


def _executable(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """The Makefile with every prerequisite up to date and the tools replaced by recorders."""
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    inputs = ["uv.lock", "pyproject.toml", "tools/cdktf/package-lock.json"]
    for name in inputs:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    _executable(tmp_path / ".tools/bin/uv", "#!/bin/sh\nexit 0\n")
    (tmp_path / ".venv").mkdir()
    (tmp_path / ".venv/.synced").write_text("")
    _executable(tmp_path / ".venv/bin/homelab-tunnel", RECORDER)
    _executable(tmp_path / "tools/cdktf/node_modules/.bin/cdktf", RECORDER)
    for age, name in enumerate(
        [*inputs, ".tools/bin/uv", ".venv/.synced", "tools/cdktf/node_modules/.bin/cdktf"]
    ):
        os.utime(tmp_path / name, (1_700_000_000 + age, 1_700_000_000 + age))
    return tmp_path


def _make(project: Path, *args: str, env: dict[str, str] | None = None) -> list[str]:
    assert MAKE is not None
    record = project / "record.txt"
    environment = {"PATH": os.environ["PATH"], "RECORD": str(record), **(env or {})}
    done = subprocess.run(
        [MAKE, "--no-print-directory", *args], cwd=project, env=environment,
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "INJECTED" not in done.stdout + done.stderr
    return record.read_text().splitlines() if record.exists() else []


HOSTILE = [
    "dir with space/my edge.toml",
    "x.toml;echo INJECTED;touch PWNED",
    "x.toml && touch PWNED",
    "$(shell touch PWNED)",
    "$(touch PWNED)",
    "`touch PWNED`",
    "${HOME}/edge.toml",
    "$$HOME.toml",
    'it\'s "quoted".toml',
    "a\\b.toml",
    "-x.toml",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_config_on_the_command_line_reaches_synth_literally(project: Path, value: str) -> None:
    calls = _make(project, "synth", f"CONFIG={value}")
    assert calls[:5] == ["homelab-tunnel", "[synth]", "[--config]", f"[{value}]", "[--out]"]
    assert calls[5] == "[cdktf.out]"
    assert not list(project.glob("PWNED*"))


@pytest.mark.parametrize("value", HOSTILE)
def test_config_from_the_environment_reaches_check_literally(project: Path, value: str) -> None:
    calls = _make(project, "check", env={"CONFIG": value})
    assert calls[:4] == ["homelab-tunnel", "[check]", "[--config]", f"[{value}]"]
    assert not list(project.glob("PWNED*"))


@pytest.mark.parametrize("value", HOSTILE[:4])
def test_out_reaches_synth_literally(project: Path, value: str) -> None:
    calls = _make(project, "synth", f"OUT={value}")
    assert calls[4:6] == ["[--out]", f"[{value}]"]
    assert not list(project.glob("PWNED*"))


@pytest.mark.parametrize("target", ["deploy", "diff"])
@pytest.mark.parametrize("value", HOSTILE[:5])
def test_cdktf_gets_the_config_variable_literally(project: Path, target: str, value: str) -> None:
    assert _make(project, target, f"HOMELAB_TUNNEL_CONFIG={value}") == [
        "cdktf",
        f"[{target}]",
        f"HOMELAB_TUNNEL_CONFIG=[{value}]",
    ]
    assert _make(project, target, f"CONFIG={value}")[-1] == f"HOMELAB_TUNNEL_CONFIG=[{value}]"
    assert not list(project.glob("PWNED*"))


def test_defaults_are_the_example_and_cdktf_out(project: Path) -> None:
    assert _make(project, "synth")[:6] == [
        "homelab-tunnel", "[synth]", "[--config]", "[examples/homelab-tunnel.toml]", "[--out]",
        "[cdktf.out]",
    ]  # fmt: skip
    assert _make(project, "deploy")[-1] == "HOMELAB_TUNNEL_CONFIG=[examples/homelab-tunnel.toml]"


def test_clean_removes_out_only_when_synth_wrote_it(project: Path) -> None:
    mine, theirs = project / "build", project / "notes"
    for folder in (mine, theirs):
        folder.mkdir()
        (folder / "file").write_text("x")
    (mine / ".homelab-tunnel-synth").write_text("x")
    _make(project, "clean", "OUT=notes")
    _make(project, "clean", "OUT=build")
    assert theirs.exists()
    assert not mine.exists()


def test_negative_twin_an_unquoted_recipe_runs_the_injected_command(tmp_path: Path) -> None:
    # What the Makefile used to do: the value pasted into the recipe's shell text.
    assert MAKE is not None
    (tmp_path / "Makefile").write_text("CONFIG ?= x.toml\nsynth:\n\t@echo --config $(CONFIG)\n")
    subprocess.run(
        [MAKE, "synth", "CONFIG=x.toml;touch PWNED"], cwd=tmp_path, capture_output=True,
        timeout=60, check=True,
    )  # fmt: skip
    assert (tmp_path / "PWNED").exists()
