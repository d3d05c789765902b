"""`synth --out` replaces only what synth wrote; the local state path does not move with cwd."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support.config import EXAMPLE, ROOT, config_with
from typer.testing import CliRunner

from homelab_tunnel.cli import app
from homelab_tunnel.errors import InputError
from homelab_tunnel.infra.outdir import MARKER, check_out_dir
from homelab_tunnel.infra.state import check_state_location, relative_state_path

runner = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1"})
STATE = "terraform.homelab-edge.tfstate"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder as users have them: the config, notes, local state, a subfolder."""
    monkeypatch.chdir(tmp_path)
    shutil.copy(EXAMPLE, tmp_path / "edge.toml")
    (tmp_path / "notes.md").write_text("keep me\n")
    (tmp_path / STATE).write_text('{"serial": 7}\n')
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("keep me too\n")
    (tmp_path / "conf").mkdir()
    shutil.copy(EXAMPLE, tmp_path / "conf" / "edge.toml")
    return tmp_path


def _tree(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): path.read_text() for path in root.rglob("*") if path.is_file()
    }


# (--out, config, what the refusal says): each must leave every file as it was.
REFUSED_OUT = [
    (".", "edge.toml", "'.' is the current directory or contains it"),
    ("..", "edge.toml", "'..' is the current directory or contains it"),
    ("edge.toml", "edge.toml", "'edge.toml' is a file, not a directory"),
    ("notes.md", "edge.toml", "'notes.md' is a file, not a directory"),
    (STATE, "edge.toml", f"'{STATE}' is a file, not a directory"),
    ("edge.toml/out", "edge.toml", "'edge.toml/out' is inside"),
    ("docs", "edge.toml", "'docs' holds files synth did not write (a.txt)"),
    ("conf", "conf/edge.toml", "'conf' contains the config file"),
    ("/proc/homelab-out", "edge.toml", "--out: cannot write '/proc/homelab-out'"),
    ("/proc/self/homelab-out", "edge.toml", "--out: cannot write '/proc/self/homelab-out'"),
]


@pytest.mark.parametrize(("out", "config", "message"), REFUSED_OUT, ids=[c[0] for c in REFUSED_OUT])
def test_synth_refuses_an_out_it_did_not_write(
    project: Path, out: str, config: str, message: str
) -> None:
    before = _tree(project)
    result = runner.invoke(app, ["synth", "--config", config, "--out", out])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.stderr.startswith(f"{config}: --out: ")
    assert message in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert _tree(project) == before


def test_a_refusal_says_what_is_allowed(project: Path) -> None:
    result = runner.invoke(app, ["synth", "--config", "edge.toml", "--out", "."])
    assert result.stderr == (
        "edge.toml: --out: '.' is the current directory or contains it; synth replaces the "
        "whole directory, so give a directory that is missing, empty or written by an "
        "earlier synth\n"
    )


def _cdktf_layout(directory: Path) -> None:
    (directory / "stacks" / "homelab-edge").mkdir(parents=True)
    (directory / "stacks" / "homelab-edge" / "cdk.tf.json").write_text("{}")
    (directory / "manifest.json").write_text(json.dumps({"version": "0.21.0", "stacks": {}}))


ACCEPTED_OUT = {
    "missing": lambda d: None,
    "empty": lambda d: d.mkdir(),
    "marked by an earlier synth": lambda d: (d.mkdir(), (d / MARKER).write_text("x")),
    "cdktf layout without the marker": lambda d: (d.mkdir(), _cdktf_layout(d)),
}


@pytest.mark.parametrize("prepare", list(ACCEPTED_OUT.values()), ids=list(ACCEPTED_OUT))
def test_synth_may_replace_a_missing_empty_or_earlier_output(
    project: Path, prepare: object
) -> None:
    out = project / "cdktf.out"
    prepare(out)  # type: ignore[operator]
    assert check_out_dir(out, config=project / "edge.toml", cwd=project) == out


def test_negative_twin_one_foreign_file_in_a_cdktf_layout_is_refused(project: Path) -> None:
    out = project / "cdktf.out"
    out.mkdir()
    _cdktf_layout(out)
    (out / "plan.tfplan").write_text("x")
    with pytest.raises(InputError, match="holds files synth did not write"):
        check_out_dir(out, config=project / "edge.toml", cwd=project)


def test_synth_twice_into_the_same_out_replaces_only_its_own_output(project: Path) -> None:
    before = _tree(project)
    for _ in range(2):
        result = runner.invoke(app, ["synth", "--config", "edge.toml", "--out", "build/out"])
        assert result.exit_code == 0, result.output
    assert (project / "build" / "out" / MARKER).is_file()
    after = _tree(project)
    assert {k: v for k, v in after.items() if not k.startswith("build/")} == before


def test_synth_never_deletes_a_folder_it_did_not_make_beside_out(project: Path) -> None:
    # `.cdktf.out.old` was the fixed name synth moved its earlier output to, and deleted.
    kept = project / ".cdktf.out.old"
    kept.mkdir()
    (kept / "notes.md").write_text("mine\n")
    before = _tree(project)
    inodes = []
    for _ in range(2):
        result = runner.invoke(app, ["synth", "--config", "edge.toml", "--out", "cdktf.out"])
        assert result.exit_code == 0, result.output
        inodes.append((project / "cdktf.out").stat().st_ino)
    assert inodes[0] != inodes[1]  # the second synth did replace the first one's output
    assert {k: v for k, v in _tree(project).items() if not k.startswith("cdktf.out/")} == before
    assert sorted(p.name for p in project.iterdir() if p.name.startswith(".")) == [".cdktf.out.old"]


def test_a_failed_swap_puts_the_earlier_output_back(tmp_path: Path) -> None:
    from homelab_tunnel.infra.synth import _replace_dir

    target = tmp_path / "cdktf.out"
    target.mkdir()
    (target / MARKER).write_text("earlier\n")
    with pytest.raises(FileNotFoundError):
        _replace_dir(tmp_path / "staging-that-vanished", target)
    assert (target / MARKER).read_text() == "earlier\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cdktf.out"]


# ---------------------------------------------------------------------------
# Item 9: the local state path is anchored to the config file's directory
# ---------------------------------------------------------------------------

# (working directory, config as given, --out as given), relative to a scratch root.
VANTAGE_POINTS = [
    (".", "proj/edge.toml", "proj/cdktf.out"),
    ("proj", "edge.toml", "cdktf.out"),
    ("proj/sub", "../edge.toml", "../cdktf.out"),
    ("elsewhere", "../proj/edge.toml", "../proj/cdktf.out"),
    ("elsewhere", "../proj/edge.toml", "out"),
    ("proj", "edge.toml", "/{root}/tmp-out"),
]


@pytest.mark.parametrize(("cwd", "config", "out"), VANTAGE_POINTS)
def test_the_state_file_is_beside_the_config_from_any_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cwd: str, config: str, out: str
) -> None:
    for folder in ("proj/sub", "elsewhere"):
        (tmp_path / folder).mkdir(parents=True, exist_ok=True)
    monkeypatch.chdir(tmp_path / cwd)
    outdir = Path(out.replace("/{root}", str(tmp_path)))
    relative = relative_state_path(config_with(), Path(config), outdir)
    stack_dir = outdir.resolve() / "stacks" / "homelab-edge"
    assert (stack_dir / relative).resolve() == tmp_path / "proj" / STATE


def test_negative_twin_configs_in_two_folders_get_two_state_files(tmp_path: Path) -> None:
    outdir = tmp_path / "cdktf.out"
    stack_dir = outdir / "stacks" / "homelab-edge"
    found = {
        (stack_dir / relative_state_path(config_with(), tmp_path / folder / "edge.toml", outdir))
        for folder in ("proj", "elsewhere")
    }
    assert len({path.resolve() for path in found}) == 2


def test_synth_and_the_cdktf_entry_point_agree_on_the_state_file(project: Path) -> None:
    (project / STATE).unlink()
    result = runner.invoke(app, ["synth", "--config", "conf/edge.toml", "--out", "a"])
    assert result.exit_code == 0, result.output
    env = {**os.environ, "CDKTF_OUTDIR": str(project / "b"), "HOMELAB_TUNNEL_CONFIG": "edge.toml"}
    subprocess.run(
        [sys.executable, str(ROOT / "main.py")], cwd=project / "conf", env=env, check=True,
        timeout=120,
    )  # fmt: skip
    for out in ("a", "b"):
        stack_dir = project / out / "stacks" / "homelab-edge"
        path = json.loads((stack_dir / "cdk.tf.json").read_text())["terraform"]["backend"]
        assert (stack_dir / path["local"]["path"]).resolve() == project / "conf" / STATE
    assert (project / "b" / MARKER).is_file()


def test_state_left_in_the_working_directory_is_not_silently_abandoned(project: Path) -> None:
    # project/terraform.homelab-edge.tfstate is where earlier versions kept conf/edge.toml's state.
    result = runner.invoke(app, ["synth", "--config", "conf/edge.toml", "--out", "cdktf.out"])
    assert result.exit_code == 2
    assert result.stderr.startswith(
        "conf/edge.toml: backend: local state is kept beside the config"
    )
    assert f"mv {project / STATE} {project / 'conf' / STATE}" in result.stderr
    assert not (project / "cdktf.out").exists()


@pytest.mark.parametrize(
    ("legacy", "anchored", "refused"),
    [(True, False, True), (False, False, False), (True, True, False), (False, True, False)],
)
def test_only_a_lone_old_state_file_stops_synth(
    tmp_path: Path, legacy: bool, anchored: bool, refused: bool
) -> None:
    (tmp_path / "conf").mkdir()
    if legacy:
        (tmp_path / STATE).write_text("{}")
    if anchored:
        (tmp_path / "conf" / STATE).write_text("{}")
    config_path = tmp_path / "conf" / "edge.toml"
    if refused:
        with pytest.raises(InputError, match="move it there first"):
            check_state_location(config_with(), config_path, tmp_path)
    else:
        check_state_location(config_with(), config_path, tmp_path)
