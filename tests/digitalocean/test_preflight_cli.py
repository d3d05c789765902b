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
    assert result.stderr == (
        "--api-url: 'http://127.0.0.1:9' is not an https:// URL "
        "(e.g. https://api.digitalocean.com)\n"
    )


def test_command_checks_the_config_before_the_account(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\n')
    result = CliRunner(env={"DIGITALOCEAN_TOKEN": TOKEN}).invoke(
        app, ["preflight", "--config", str(bad)]
    )
    assert result.exit_code == 2
    assert f"{bad}: region: required but missing" in result.stderr


# ---------------------------------------------------------------------------
# Secrets are never printed: malformed tokens are refused without an echo
# ---------------------------------------------------------------------------

SECRET = "dop_v1_0123456789abcdef"
MALFORMED_TOKENS = {
    "second line": f"{SECRET}\nsecond-line-secret",
    "blank inside": f"{SECRET} second-part-secret",
    "tab inside": f"{SECRET}\tsecond-part-secret",
    "carriage return": f"{SECRET}\rsecond-part-secret",
    "non-ASCII": f"{SECRET}\u00e9second-part-secret",
    "control character": f"{SECRET}\x01second-part-secret",
}


@pytest.mark.parametrize("token", list(MALFORMED_TOKENS.values()), ids=list(MALFORMED_TOKENS))
def test_a_malformed_token_is_refused_without_echoing_it(
    fake: FakeDigitalOcean, token: str
) -> None:
    result = _cli(fake, DIGITALOCEAN_TOKEN=token)
    assert result.exit_code == 2
    assert result.stderr == (
        "DIGITALOCEAN_TOKEN: holds a line break, a blank or another character no API token "
        "has (the value is not shown: it is a secret); export the token alone, on one line\n"
    )
    assert "dop_v1" not in result.output
    assert "secret" not in result.output.replace("is a secret", "")
    assert fake.requests == []


def test_surrounding_blanks_are_not_part_of_the_token(fake: FakeDigitalOcean) -> None:
    result = _cli(fake, DIGITALOCEAN_TOKEN=f"  {TOKEN}\n")
    assert result.exit_code == 0, result.output


# (--api-url, the refusal): never a traceback, credentials never shown.
BAD_API_URLS = [
    ("https://[::1", "'https://[::1' is not an https:// URL"),
    ("https://127.0.0.1:99999", "'https://127.0.0.1:99999' is not an https:// URL"),
    ("https://", "'https://' is not an https:// URL"),
    ("https://api.digitalocean.com\n.evil", "is not an https:// URL"),
    (
        "https://ops:hunter2@api.digitalocean.com",
        "'https://***@api.digitalocean.com' carries credentials",
    ),
]


@pytest.mark.parametrize(("url", "message"), BAD_API_URLS)
def test_a_bad_api_url_is_refused_in_one_line(url: str, message: str) -> None:
    result = _cli(None, DIGITALOCEAN_API_URL=url)
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert result.stderr.startswith("--api-url: ")
    assert message in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert "hunter2" not in result.output


def _raises(exc: Exception) -> Any:
    def call() -> Any:
        raise exc

    return call


def test_an_error_that_quotes_the_header_does_not_show_the_token() -> None:
    from azure.core.exceptions import ServiceRequestError

    client = do_api.DigitalOceanApi(SECRET)
    quoting = ServiceRequestError(f"Invalid header value: 'Bearer {SECRET}'")
    with pytest.raises(do_api.ApiError) as caught:
        client._call("the account", _raises(quoting))
    assert SECRET not in caught.value.message
    assert "'Bearer <DIGITALOCEAN_TOKEN>'" in caught.value.message
    # Negative twin: without the redaction the library's text would carry it.
    with pytest.raises(do_api.ApiError) as raw:
        client._unredacted_call("the account", _raises(quoting))
    assert SECRET in raw.value.message
