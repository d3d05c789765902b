"""`homelab-tunnel preflight` as a user runs it, against the fake DigitalOcean API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support.config import EXAMPLE
from support.fake_digitalocean import FAST, TOKEN, FakeDigitalOcean
from typer.testing import CliRunner

from homelab_tunnel.cli import app
from homelab_tunnel.digitalocean import api as do_api
from homelab_tunnel.digitalocean.api import ApiSettings


def _cli(fake: FakeDigitalOcean | None, **env: str) -> Any:
    environment = {"COLUMNS": "200", "NO_COLOR": "1", "DIGITALOCEAN_TOKEN": TOKEN}
    if fake is not None:
        environment["DIGITALOCEAN_API_URL"] = fake.url
    runner = CliRunner(env=environment | env)
    return runner.invoke(app, ["preflight", "--config", str(EXAMPLE)])


def test_command_prints_one_line_per_check_and_exits_0(fake: FakeDigitalOcean) -> None:
    result = _cli(fake)
    assert result.exit_code == 0, result.output
    *checks, summary = result.stdout.splitlines()
    assert len(checks) == 8
    assert all(line.startswith("ok: ") for line in checks)
    assert summary == f"ok: {EXAMPLE}: preflight: 0 problem(s), 0 warning(s)"


def test_command_exits_1_when_a_check_fails(fake: FakeDigitalOcean) -> None:
    fake.state.domains.clear()
    result = _cli(fake)
    assert result.exit_code == 1
    assert "problem: dns.zone: example.com is not a DNS zone" in result.stdout
    assert result.stdout.splitlines()[-1] == (
        f"problems found: {EXAMPLE}: preflight: 1 problem(s), 0 warning(s)"
    )
    assert result.stderr == ""


def test_command_with_rate_limit_is_bounded_and_clear(
    fake: FakeDigitalOcean, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(do_api, "DEFAULT_SETTINGS", ApiSettings(**FAST))
    fake.state.rate_limited = -1
    result = _cli(fake)
    assert result.exit_code == 1
    assert "429 Too Many Requests) after 2 retries" in result.stdout
    assert len(fake.requests) == 3


def test_command_without_a_token_exits_2() -> None:
    result = _cli(None, DIGITALOCEAN_TOKEN="")
    assert result.exit_code == 2
    assert result.stderr.startswith("DIGITALOCEAN_TOKEN: not set: export a DigitalOcean API")
    assert "Traceback" not in result.output


def test_command_with_a_bad_token_says_so(fake: FakeDigitalOcean) -> None:
    result = _cli(fake, DIGITALOCEAN_TOKEN="dop_v1_revoked")
    assert result.exit_code == 1
    assert result.stdout.startswith("problem: token: DIGITALOCEAN_TOKEN was rejected (401")


def test_command_refuses_a_plain_http_endpoint() -> None:
    result = _cli(None, DIGITALOCEAN_API_URL="http://127.0.0.1:9")
    assert result.exit_code == 2
    assert result.stderr == "--api-url: 'http://127.0.0.1:9' is not an https:// URL\n"


def test_command_checks_the_config_before_the_account(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\n')
    result = CliRunner(env={"DIGITALOCEAN_TOKEN": TOKEN}).invoke(
        app, ["preflight", "--config", str(bad)]
    )
    assert result.exit_code == 2
    assert f"{bad}: region: required but missing" in result.stderr
