"""The `homelab-tunnel` commands and the cdktf entry point, as a user runs them."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support.config import EXAMPLE, ROOT
from typer.testing import CliRunner

from homelab_tunnel.cli import app
from homelab_tunnel.config import TunnelConfig
from homelab_tunnel.crawlers import ai_crawlers

runner = CliRunner(env={"COLUMNS": "120", "NO_COLOR": "1"})


def test_check_shows_what_the_config_describes() -> None:
    result = runner.invoke(app, ["check", "--config", str(EXAMPLE)])
    assert result.exit_code == 0, result.output
    assert "blog.example.com" in result.stdout
    assert "http://homelab.tail.example.net:8080" in result.stdout
    assert "SSH (TCP 22): closed" in result.stdout
    assert "is valid" in result.stdout


def test_check_prints_each_sites_policy_in_its_table() -> None:
    wide = CliRunner(env={"COLUMNS": "220", "NO_COLOR": "1"})
    result = wide.invoke(app, ["check", "--config", str(EXAMPLE.parent / "private-sites.toml")])
    assert result.exit_code == 0, result.output
    rows = {
        line.split("│")[1].strip(): line.split("│")[3].strip()
        for line in result.stdout.splitlines()
        if line.startswith("│")
    }
    assert rows == {
        "blog.example.com": "AI crawlers blocked; HSTS",
        "photos.example.com": "AI crawlers blocked; basic auth (alice)",
        "wiki.example.com": "forward auth (auth.tail.example.net:9091/api/authz/forward-auth)",
        "login.example.com": "open to everyone",
        "nas.example.com": "only 198.51.100.0/24, 2001:db8:1::/48",
        "headscale.example.com": "its own logins",
    }


def test_check_json_lists_the_sites_without_password_hashes() -> None:
    path = EXAMPLE.parent / "private-sites.toml"
    result = runner.invoke(app, ["check", "--config", str(path), "--json"])
    assert result.exit_code == 0, result.output
    sites = json.loads(result.stdout)["sites"]
    assert sites[1]["auth"] == {"kind": "basic", "users": ["alice"]}
    assert "$2a$" in path.read_text()
    assert "$2a$" not in result.stdout


def test_synth_writes_the_stack_and_summarises_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    shutil.copy(EXAMPLE, tmp_path / "edge.toml")
    result = runner.invoke(app, ["synth", "--config", "edge.toml", "--out", "cdktf.out"])
    assert result.exit_code == 0, result.output
    stack_json = tmp_path / "cdktf.out" / "stacks" / "homelab-edge" / "cdk.tf.json"
    document = json.loads(stack_json.read_text())
    assert "digitalocean_droplet" in document["resource"]
    assert "stack homelab-edge" in result.stdout
    count = sum(len(resources) for resources in document["resource"].values())
    assert f"{count} resources" in result.stdout
    assert "reserved IP: known after apply" in result.stdout
    assert "sites: blog.example.com, photos.example.com" in result.stdout
    # State lives beside the config, outside the regenerated cdktf.out.
    state = document["terraform"]["backend"]["local"]["path"]
    assert state == "../../../terraform.homelab-edge.tfstate"
    assert (stack_json.parent / state).resolve() == tmp_path / "terraform.homelab-edge.tfstate"
    location = f"{tmp_path}/terraform.homelab-edge.tfstate (local file, beside the config)"
    assert f"Terraform state: {location}" in result.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cdktf.out", "edge.toml"]


def test_failed_synth_leaves_the_previous_output_untouched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, example_config: TunnelConfig
) -> None:
    from homelab_tunnel.infra import synth as synth_app

    out = tmp_path / "cdktf.out"
    out.mkdir()
    (out / "previous.txt").write_text("kept")

    def explode(_app: object) -> None:
        raise RuntimeError("synthesis failed halfway")

    monkeypatch.setattr(synth_app.App, "synth", explode)
    with pytest.raises(RuntimeError, match="halfway"):
        synth_app.synthesize(example_config, out, config_path=EXAMPLE)
    assert [p.name for p in tmp_path.iterdir()] == ["cdktf.out"]
    assert [p.name for p in out.iterdir()] == ["previous.txt"]


def test_bad_config_writes_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\n')
    result = runner.invoke(app, ["synth", "--config", str(bad), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "region: required but missing" in result.stderr
    assert not (tmp_path / "out").exists()


def test_cdktf_entry_point_synthesizes_from_the_environment(tmp_path: Path) -> None:
    """What `cdktf synth` runs: python main.py with CDKTF_OUTDIR and our config variable."""
    env = {
        **os.environ,
        "CDKTF_OUTDIR": str(tmp_path / "out"),
        "HOMELAB_TUNNEL_CONFIG": str(EXAMPLE),
    }
    subprocess.run([sys.executable, "main.py"], cwd=ROOT, env=env, check=True, timeout=120)
    stack_json = tmp_path / "out" / "stacks" / "homelab-edge" / "cdk.tf.json"
    assert "digitalocean_droplet" in json.loads(stack_json.read_text())["resource"]


def test_cdktf_entry_point_rejects_bad_config_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("name = 3\n")
    env = {**os.environ, "CDKTF_OUTDIR": str(tmp_path / "out"), "HOMELAB_TUNNEL_CONFIG": str(bad)}
    result = subprocess.run(
        [sys.executable, "main.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert f"{bad}: name:" in result.stderr
    assert "Traceback" not in result.stderr


def test_render_prints_the_file_the_edge_gets(example_config: TunnelConfig) -> None:
    from homelab_tunnel.render.caddyfile import render_caddyfile

    result = runner.invoke(app, ["render", "caddyfile", "--config", str(EXAMPLE)])
    assert result.exit_code == 0, result.output
    assert result.stdout == render_caddyfile(example_config, ai_crawlers())


def test_render_rejects_an_unknown_file() -> None:
    result = runner.invoke(app, ["render", "nginx.conf", "--config", str(EXAMPLE)])
    assert result.exit_code == 2
    assert "'nginx.conf' is not one of" in result.stderr
    assert "'caddyfile', 'headscale', 'policy', 'user-data'" in result.stderr
    assert result.stdout == ""


def test_check_titles_the_table_with_the_name_as_written(tmp_path: Path) -> None:
    """`my-edge` stays `my-edge`: piped, and on a terminal where rich styles the title."""
    from support.terminal import Terminal

    config = tmp_path / "edge.toml"
    config.write_text(EXAMPLE.read_text().replace('name = "homelab-edge"', 'name = "my-edge"'))
    piped = runner.invoke(app, ["check", "--config", str(config)])
    assert piped.stdout.splitlines()[0].strip() == "my-edge (fra1, s-1vcpu-1gb)"
    cli = Path(sys.executable).parent / "homelab-tunnel"
    env = {"PATH": os.environ["PATH"], "TERM": "xterm-256color", "COLUMNS": "100"}
    with Terminal([str(cli), "check", "--config", str(config)], cwd=tmp_path, env=env) as term:
        assert term.wait() == 0, term.screen
    plain = re.sub(r"\x1b\[[0-9;]*m", "", term.screen)
    assert plain.splitlines()[0].strip() == "my-edge (fra1, s-1vcpu-1gb)"
    assert "\x1b[3m" in term.screen  # the twin: on a terminal the title is styled (italic)
