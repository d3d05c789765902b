"""`make diff` end to end: the Makefile, the pinned cdktf CLI, cdktf.json, main.py and Terraform.

The project is mirrored into a temporary folder by symlinks, so cdktf.out,
Terraform's working files and any state land there, never in the checkout.
Terraform uses the offline provider mirror; `--skip-provider-lock` stops cdktf
from running `terraform providers lock`, which would ask the registry.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
from support.config import ROOT, write_config
from support.shapes import BY_NAME, Synth
from support.terraform import OfflineTerraform

# What `make diff` needs from the checkout (the built .venv and .tools included).
PROJECT_FILES = (
    "Makefile",
    "main.py",
    "cdktf.json",
    "pyproject.toml",
    "uv.lock",
    ".venv",
    ".tools",
    "tools",
    "homelab_tunnel",
    "examples",
)
CDKTF = "tools/cdktf/node_modules/.bin/cdktf"
# No `terraform providers lock`: it asks the registry, whatever the CLI config says.
FLAGS = "CDKTF_FLAGS=--skip-provider-lock --no-color"
# cdktf 0.21 points TF_PLUGIN_CACHE_DIR at ~/.terraform.d/plugin-cache (creating it) before
# it reads its flags, so --disable-plugin-cache-env comes too late; the variable does not.
NO_PLUGIN_CACHE = {"CDKTF_DISABLE_PLUGIN_CACHE_ENV": "1"}


def _make_env(extra: dict[str, str]) -> dict[str, str]:
    """This process's environment without the outer make's flags, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    return env | extra


def _diff_env(terraform: OfflineTerraform, config: Path) -> dict[str, str]:
    """Only what Terraform gets in every other test, plus the config and no plugin cache."""
    return terraform.env() | NO_PLUGIN_CACHE | {"HOMELAB_TUNNEL_CONFIG": str(config)}


def _make(directory: Path, *args: str, env: dict[str, str], timeout: float = 600) -> Any:
    return subprocess.run(
        ["make", "--no-print-directory", "-C", str(directory), *args],
        env=env, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def cdktf_cli() -> Path:
    """The pinned cdktf CLI, installed by the Makefile's own target (npm ci) if needed."""
    done = _make(ROOT, CDKTF, env=_make_env({}))
    if done.returncode != 0:
        lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
        pytest.skip(f"the cdktf CLI could not be installed: {lines[-1] if lines else 'npm ci'}")
    return ROOT / CDKTF


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    for name in PROJECT_FILES:
        (folder / name).symlink_to(ROOT / name)
    return folder


def _stack_without_backend(document: dict[str, Any]) -> dict[str, Any]:
    # The local state path is relative to where synthesis ran: the one expected difference.
    return document | {
        "terraform": {k: v for k, v in document["terraform"].items() if k != "backend"}
    }


def test_make_diff_plans_the_config_through_main_py_offline(
    terraform: OfflineTerraform,
    cdktf_cli: Path,
    project: Path,
    synthesized: Synth,
    tmp_path: Path,
) -> None:
    base = BY_NAME["base"]
    config = write_config(tmp_path, base.raw())
    env = _diff_env(terraform, config)
    done = _make(project, "diff", FLAGS, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    expected = synthesized(base)
    resources = sum(len(items) for items in expected["resource"].values())
    assert f"Plan: {resources} to add, 0 to change, 0 to destroy." in done.stdout
    written = json.loads((project / "cdktf.out/stacks/homelab-edge/cdk.tf.json").read_text())
    assert _stack_without_backend(written) == _stack_without_backend(expected)
    assert not (Path(env["HOME"]) / ".terraform.d" / "plugin-cache").exists()


def test_make_diff_stops_on_a_bad_config_before_terraform_runs(
    terraform: OfflineTerraform, cdktf_cli: Path, project: Path, tmp_path: Path
) -> None:
    config = write_config(tmp_path, BY_NAME["base"].raw(), region="Frankfurt")
    env = _diff_env(terraform, config)
    done = _make(project, "diff", FLAGS, env=env)
    assert done.returncode != 0
    assert f"{config}: region:" in done.stdout + done.stderr
    assert not (project / "cdktf.out/stacks/homelab-edge/.terraform").exists()


# ---------------------------------------------------------------------------
# CDKTF_FLAGS: words for cdktf, never code for make or the shell
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["diff", "deploy"])
def test_cdktf_flags_reach_cdktf_as_words_and_nothing_runs(target: str, tmp_path: Path) -> None:
    recorder = tmp_path / "cdktf"
    recorder.write_text('#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done > "$0.args"\n')
    recorder.chmod(recorder.stat().st_mode | stat.S_IXUSR)
    flags = (
        f"--skip-provider-lock --var=a=b ; touch {tmp_path}/semicolon "
        f"$(shell touch {tmp_path}/make) `touch {tmp_path}/backtick` $$(touch {tmp_path}/dollar) "
        "* 'quoted'"
    )
    done = _make(ROOT, target, f"CDKTF={recorder}", f"CDKTF_FLAGS={flags}", env=_make_env({}))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "cdktf.args").read_text().splitlines() == [target, *flags.split()]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["cdktf", "cdktf.args"]


def test_no_cdktf_flags_means_none_are_passed(tmp_path: Path) -> None:
    recorder = tmp_path / "cdktf"
    recorder.write_text('#!/bin/sh\nprintf "%s\\n" "$#" > "$0.args"\n')
    recorder.chmod(recorder.stat().st_mode | stat.S_IXUSR)
    done = _make(ROOT, "diff", f"CDKTF={recorder}", env=_make_env({}))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "cdktf.args").read_text() == "1\n"  # just "diff"
