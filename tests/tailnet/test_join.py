"""`homelab-tunnel join-command`: a script that brings a homelab machine onto the edge's tailnet.

Read as text for what it promises, and run under bash with stand-ins for
tailscale, ssh, sudo, curl and apt-get for what it does.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from support.config import EXAMPLE, config_with, example_raw, write_config
from typer.testing import CliRunner

from homelab_tunnel.cli import app
from homelab_tunnel.tailnet.join import MINT_KEY, join_steps

runner = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1"})
needs_bash = pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")


def _join(*args: str) -> str:
    result = runner.invoke(app, ["join-command", "--config", str(EXAMPLE), *args])
    assert result.exit_code == 0, result.output
    return result.stdout


# ---------------------------------------------------------------------------
# What the script says
# ---------------------------------------------------------------------------


def test_names_the_minimum_client_of_the_configured_headscale() -> None:
    assert "Headscale 0.29.2 accepts Tailscale 1.80 or newer" in _join()
    older = join_steps(config_with(headscale={"version": "0.28.0"}))
    assert "Headscale 0.28.0 accepts Tailscale 1.74 or newer" in older
    assert "MINIMUM=1.74\n" in older


def test_installs_from_the_official_stable_repository_never_a_pinned_package() -> None:
    text = _join()
    assert (
        'curl -fsSL "https://pkgs.tailscale.com/stable/$ID/$VERSION_CODENAME.noarmor.gpg"' in text
    )
    assert "sudo apt-get install -y tailscale tailscale-archive-keyring" in text
    assert "tailscale=" not in text


def test_closed_ssh_points_to_the_allowlist_or_the_console() -> None:
    text = _join()
    assert "ssh_allowed_cidrs is empty" in text
    assert f"{MINT_KEY} <machine> 1h" in text


def test_open_ssh_names_the_allowed_sources() -> None:
    text = join_steps(config_with(ssh_allowed_cidrs=["203.0.113.7/32"]))
    assert "SSH to the edge is allowed from 203.0.113.7/32" in text


def test_a_given_edge_address_is_the_default() -> None:
    assert 'EDGE="${EDGE:-203.0.113.10}"' in _join("--edge", "203.0.113.10")


def test_bad_config_is_bad_input(tmp_path: Path) -> None:
    path = write_config(tmp_path, region="mars1")
    result = runner.invoke(app, ["join-command", "--config", str(path)])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"{path}: region: 'mars1' is not a DigitalOcean region")


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_the_script_passes_shellcheck(tmp_path: Path) -> None:
    script = tmp_path / "join.sh"
    script.write_text(_join("--edge", "203.0.113.10"))
    done = subprocess.run(["shellcheck", str(script)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout


# ---------------------------------------------------------------------------
# What the script does (stand-ins on PATH record every call)
# ---------------------------------------------------------------------------

STAND_IN = """#!/bin/sh
echo "$(basename "$0") $*" >> "$CALLS"
case "$(basename "$0") $1" in
  "tailscale version") echo "$TAILSCALE_VERSION" ;;
  "ssh -o") echo "hskey-auth-minted-on-the-edge" ;;
  "sudo "*) exec "$@" ;;
esac
exit 0
"""


def _run(
    tmp_path: Path, script: str, **env: str
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name in ("tailscale", "ssh", "sudo", "curl", "apt-get"):
        (bin_dir / name).write_text(STAND_IN)
        (bin_dir / name).chmod(0o755)
    calls = tmp_path / "calls"
    calls.write_text("")
    done = subprocess.run(
        ["bash", "-c", script],
        env={
            "PATH": f"{bin_dir}{os.pathsep}/usr/bin:/bin",
            "CALLS": str(calls),
            "TAILSCALE_VERSION": "1.102.3",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
    )
    return done, calls.read_text().splitlines()


@needs_bash
def test_a_current_client_joins_with_a_key_minted_on_the_edge(tmp_path: Path) -> None:
    done, calls = _run(tmp_path, _join(), EDGE="203.0.113.10")
    assert done.returncode == 0, done.stderr
    assert not any(call.startswith(("apt-get", "curl")) for call in calls)
    assert (
        "ssh -o BatchMode=yes -o StrictHostKeyChecking=accept-new "
        f"root@203.0.113.10 {MINT_KEY} homelab 1h"
    ) in calls
    assert (
        "tailscale up --login-server https://headscale.example.com "
        "--auth-key hskey-auth-minted-on-the-edge --hostname homelab --accept-dns=false "
        "--timeout 2m"
    ) in calls
    assert calls[-1] == "tailscale ping -c 10 homelab-edge"


@needs_bash
@pytest.mark.parametrize(
    ("installed", "upgrades"), [("1.78.3", True), ("", True), ("1.80.0", False)]
)
def test_an_old_or_missing_client_is_upgraded_first(
    tmp_path: Path, installed: str, upgrades: bool
) -> None:
    done, calls = _run(tmp_path, _join(), EDGE="203.0.113.10", TAILSCALE_VERSION=installed)
    assert done.returncode == 0, done.stderr
    assert ("apt-get install -y tailscale tailscale-archive-keyring" in calls) is upgrades


@needs_bash
def test_a_key_from_the_console_needs_no_ssh(tmp_path: Path) -> None:
    done, calls = _run(tmp_path, _join(), KEY="hskey-auth-from-the-console")
    assert done.returncode == 0, done.stderr
    assert not any(call.startswith("ssh") for call in calls)
    assert any("--auth-key hskey-auth-from-the-console" in call for call in calls)


@needs_bash
def test_without_edge_or_key_nothing_is_changed(tmp_path: Path) -> None:
    done, calls = _run(tmp_path, _join())
    assert done.returncode == 2
    assert "set EDGE to the edge's reserved IP" in done.stderr
    assert calls == []


@needs_bash
def test_each_upstream_machine_joins_as_itself(tmp_path: Path) -> None:
    raw: dict[str, Any] = example_raw()
    raw["sites"][1]["upstream"] = "nas"
    script = join_steps(config_with(sites=raw["sites"]))
    done, calls = _run(tmp_path, script, EDGE="203.0.113.10", MACHINE="nas")
    assert done.returncode == 0, done.stderr
    assert (
        "ssh -o BatchMode=yes -o StrictHostKeyChecking=accept-new "
        f"root@203.0.113.10 {MINT_KEY} nas 1h" in calls
    )
    assert any("--hostname nas" in call for call in calls)


@needs_bash
def test_a_machine_no_site_uses_is_refused(tmp_path: Path) -> None:
    done, calls = _run(tmp_path, _join(), EDGE="203.0.113.10", MACHINE="laptop")
    assert done.returncode == 2
    assert "MACHINE must be one of the sites' upstream machines: homelab" in done.stderr
    assert calls == []


@needs_bash
@pytest.mark.parametrize(
    "path", ["my edge.toml", "edge.toml;touch PWNED", "$(touch PWNED).toml", "it's.toml"]
)
def test_the_printed_doctor_command_keeps_the_config_path_intact(tmp_path: Path, path: str) -> None:
    """The script prints the command to paste next; neither runs anything else."""
    script = join_steps(config_with(), config_path=path)
    done, _ = _run(tmp_path, script, EDGE="203.0.113.10")
    assert done.returncode == 0, done.stderr
    line = done.stdout.splitlines()[-1].strip()
    assert line.startswith("homelab-tunnel doctor --config ")
    command = line.replace("homelab-tunnel doctor", "printf '%s\\n'", 1)
    pasted = subprocess.run(
        ["sh", "-c", command], cwd=tmp_path, env={"PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    assert pasted.stdout.splitlines() == ["--config", path, "--ssh", "root@203.0.113.10"]
    assert not (tmp_path / "PWNED").exists()
