"""`homelab-tunnel join-command`: the steps that bring the homelab onto the edge's tailnet."""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from support.config import EXAMPLE, config_with, example_raw, write_config
from typer.testing import CliRunner

from homelab_tunnel.cli import app
from homelab_tunnel.tailnet.join import join_steps

runner = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1"})


def _join(*args: str) -> str:
    result = runner.invoke(app, ["join-command", "--config", str(EXAMPLE), *args])
    assert result.exit_code == 0, result.output
    return result.stdout


def _commands(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_installs_tailscale_from_the_official_stable_repository() -> None:
    text = _join()
    assert (
        'curl -fsSL "https://pkgs.tailscale.com/stable/$ID/$VERSION_CODENAME.noarmor.gpg"' in text
    )
    assert "sudo apt-get install -y tailscale tailscale-archive-keyring" in text
    assert "tailscale=" not in text  # never a pinned (and so, one day, outdated) package


def test_names_the_minimum_client_of_the_configured_headscale() -> None:
    assert "Headscale 0.29.2 accepts Tailscale 1.80 or newer" in _join()
    older = join_steps(config_with(headscale={"version": "0.28.0"}))
    assert "Headscale 0.28.0 accepts Tailscale 1.74 or newer" in older


def test_mints_the_key_on_the_edge_by_user_id() -> None:
    text = _join("--edge", "203.0.113.10")
    assert "EDGE=203.0.113.10    # the edge's reserved IP" in text
    commands = _commands(text)
    assert 'ssh root@"$EDGE" headscale users create homelab    # once' in "\n".join(commands)
    create = 'ssh root@"$EDGE" headscale preauthkeys create --user "$USER_ID" --expiration 1h'
    assert create in commands


def test_joins_with_the_login_server_and_the_site_host_name() -> None:
    text = _join()
    assert (
        'sudo tailscale up --login-server https://headscale.example.com --auth-key "$KEY" \\\n'
        "  --hostname homelab --accept-dns=false"
    ) in text


def test_explains_how_to_verify_the_path() -> None:
    text = _join("--edge", "203.0.113.10")
    assert "tailscale ping homelab-edge    # on the homelab" in text
    assert f'homelab-tunnel doctor --config {EXAMPLE} --ssh root@"$EDGE"' in text


def test_closed_ssh_points_to_the_allowlist_or_the_console() -> None:
    text = _join()
    assert "ssh_allowed_cidrs is empty" in text
    assert "DigitalOcean droplet console" in text


def test_open_ssh_names_the_allowed_sources() -> None:
    text = join_steps(config_with(ssh_allowed_cidrs=["203.0.113.7/32"]))
    assert "SSH is allowed from 203.0.113.7/32" in text


def test_every_distinct_upstream_machine_is_named() -> None:
    raw: dict[str, Any] = copy.deepcopy(example_raw())
    raw["sites"][1]["upstream"] = "nas"
    text = join_steps(config_with(sites=raw["sites"]))
    assert "--hostname homelab" in text
    assert "The sites also use nas: repeat steps 1-3" in text


def test_bad_config_is_bad_input(tmp_path: Path) -> None:
    path = write_config(tmp_path, region="mars1")
    result = runner.invoke(app, ["join-command", "--config", str(path)])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"{path}: region: 'mars1' is not a DigitalOcean region")


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_printed_steps_are_valid_shell() -> None:
    done = subprocess.run(
        ["bash", "-n"], input=_join(), capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    "path", ["my edge.toml", "edge.toml;touch PWNED", "$(touch PWNED).toml", "it's.toml"]
)
def test_the_printed_doctor_command_runs_with_the_config_path_intact(
    tmp_path: Path, path: str
) -> None:
    # The steps are pasted into a shell: the config path must arrive as one argument.
    line = next(
        line
        for line in join_steps(config_with(), config_path=path).splitlines()
        if line.startswith("homelab-tunnel doctor")
    )
    command = line.split("    #")[0].replace("homelab-tunnel doctor", "printf '%s\\n'", 1)
    done = subprocess.run(
        ["sh", "-c", command], cwd=tmp_path, env={"PATH": "/usr/bin:/bin", "EDGE": "203.0.113.10"},
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    assert done.stdout.splitlines() == ["--config", path, "--ssh", "root@203.0.113.10"]
    assert not (tmp_path / "PWNED").exists()
