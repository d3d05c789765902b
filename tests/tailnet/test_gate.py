"""`check`'s version gate: configs Headscale would reject exit 1, saying why."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from support.config import EXAMPLE, write_config
from typer.testing import CliRunner

from homelab_tunnel.cli import app

runner = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1"})


def _config(tmp_path: Path, *, headscale: str | None = None, homelab: str | None = None) -> Path:
    return write_config(
        tmp_path, headscale={"version": headscale}, homelab={"tailscale_version": homelab}
    )


def _check(*args: str) -> Any:
    return runner.invoke(app, ["check", *args])


def test_example_passes_the_gate_and_keeps_the_summary() -> None:
    result = _check("--config", str(EXAMPLE))
    assert result.exit_code == 0, result.output
    assert "blog.example.com" in result.stdout
    assert (
        "ok: headscale.version: Headscale 0.29.2 accepts Tailscale 1.80 or newer" in result.stdout
    )
    assert "Tailscale 1.90.2 is accepted" in result.stdout
    assert "problem:" not in result.stdout


def test_unknown_headscale_version_exits_1(tmp_path: Path) -> None:
    result = _check("--config", str(_config(tmp_path, headscale="0.30.0", homelab="1.90.2")))
    assert result.exit_code == 1, result.output
    assert "problem: headscale.version: Headscale 0.30.0 is not in the version table" in (
        result.stdout
    )
    assert "known: 0.26, 0.27, 0.28, 0.29" in result.stdout
    assert "version gate failed" in result.stdout


def test_homelab_below_headscale_minimum_exits_1(tmp_path: Path) -> None:
    result = _check("--config", str(_config(tmp_path, homelab="1.36.0")))
    assert result.exit_code == 1, result.output
    assert "problem: homelab.tailscale_version: Tailscale 1.36.0 is older than 1.80" in (
        result.stdout
    )


def test_homelab_minimum_depends_on_the_pinned_headscale(tmp_path: Path) -> None:
    """1.74 is fine for Headscale 0.28 and refused by 0.29."""
    assert (
        _check("--config", str(_config(tmp_path, headscale="0.28.0", homelab="1.74.0"))).exit_code
        == 0
    )
    assert (
        _check("--config", str(_config(tmp_path, headscale="0.29.2", homelab="1.74.0"))).exit_code
        == 1
    )


def test_unstable_homelab_client_is_named_as_such(tmp_path: Path) -> None:
    result = _check("--config", str(_config(tmp_path, homelab="1.91.2")))
    assert result.exit_code == 0, result.output
    assert "Tailscale 1.91.2 (unstable track) is accepted" in result.stdout


def test_undeclared_homelab_version_is_not_a_problem(tmp_path: Path) -> None:
    result = _check("--config", str(_config(tmp_path)))
    assert result.exit_code == 0, result.output
    assert "homelab.tailscale_version: not set" in result.stdout


def test_upgrade_skipping_a_minor_release_exits_1() -> None:
    result = _check("--config", str(EXAMPLE), "--upgrade-from", "0.27.1")
    assert result.exit_code == 1, result.output
    assert "problem: upgrade: Headscale 0.27.1 -> 0.29.2 skips 1 minor release" in result.stdout


def test_downgrade_exits_1(tmp_path: Path) -> None:
    path = _config(tmp_path, headscale="0.28.0", homelab="1.90.2")
    result = _check("--config", str(path), "--upgrade-from", "0.29.2")
    assert result.exit_code == 1, result.output
    assert "problem: upgrade: Headscale 0.29.2 -> 0.28.0 is a downgrade" in result.stdout


def test_one_minor_upgrade_is_allowed() -> None:
    result = _check("--config", str(EXAMPLE), "--upgrade-from", "v0.28.0")
    assert result.exit_code == 0, result.output
    assert "ok: upgrade: Headscale 0.28.0 -> 0.29.2 is allowed (one minor release up)" in (
        result.stdout
    )


def test_same_minor_patch_upgrade_is_allowed() -> None:
    result = _check("--config", str(EXAMPLE), "--upgrade-from", "0.29.0")
    assert result.exit_code == 0, result.output
    assert "is allowed (same minor release)" in result.stdout


def test_unparseable_upgrade_from_is_bad_input() -> None:
    result = _check("--config", str(EXAMPLE), "--upgrade-from", "latest")
    assert result.exit_code == 2
    assert result.stderr.startswith("--upgrade-from: 'latest' is not a version")
    assert "Traceback" not in result.output
