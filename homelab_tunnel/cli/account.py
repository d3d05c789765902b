"""Commands that talk to the DigitalOcean account: `preflight` and `snapshot`."""

from __future__ import annotations

import os
import re
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated
from urllib.parse import urlsplit

import typer

from homelab_tunnel.cli.app import (
    DEFAULT_CONFIG,
    ConfigOption,
    JsonOption,
    app,
    reports_input_errors,
)
from homelab_tunnel.cli.output import print_findings, print_json
from homelab_tunnel.config import TunnelConfig, load_config
from homelab_tunnel.errors import InputError
from homelab_tunnel.findings import Finding, count_line, problem, problems

if TYPE_CHECKING:
    from homelab_tunnel.digitalocean.api import DigitalOceanApi

ApiUrlOption = Annotated[
    str,
    typer.Option(
        "--api-url", envvar="DIGITALOCEAN_API_URL", help="DigitalOcean API endpoint (https)."
    ),
]
DEFAULT_API_URL = "https://api.digitalocean.com"
REASON = re.compile(r"[a-z0-9][a-z0-9-]{0,19}")


def _client(api_url: str) -> DigitalOceanApi:
    """An API client for DIGITALOCEAN_TOKEN; pydo is slow to import, so only here."""
    token = _token(os.environ.get("DIGITALOCEAN_TOKEN", ""))
    _check_api_url(api_url)
    from homelab_tunnel.digitalocean import api

    return api.DigitalOceanApi(token, replace(api.DEFAULT_SETTINGS, endpoint=api_url))


@app.command()
@reports_input_errors
def preflight(
    config: ConfigOption = DEFAULT_CONFIG,
    api_url: ApiUrlOption = DEFAULT_API_URL,
    as_json: JsonOption = False,
) -> None:
    """Check the account before the first apply: token, SSH keys, zone, region, records.

    Reads DIGITALOCEAN_TOKEN. One line per check; exit 1 when any check fails.
    """
    loaded = load_config(config)
    client = _client(api_url)
    from homelab_tunnel.digitalocean.preflight import run_preflight

    _report(run_preflight(loaded, client), f"{config}: preflight", config, as_json)


@app.command()
@reports_input_errors
def snapshot(
    config: ConfigOption = DEFAULT_CONFIG,
    reason: Annotated[
        str,
        typer.Option(
            "--reason", help="A word saying why, appended to the snapshot's name (a-z, 0-9, -)."
        ),
    ] = "manual",
    api_url: ApiUrlOption = DEFAULT_API_URL,
    as_json: JsonOption = False,
) -> None:
    """Snapshot the state volume, keeping the newest backup.snapshots_keep of this tool's.

    Reads DIGITALOCEAN_TOKEN (write access to block storage). Take one before
    an apply that replaces the droplet or changes Headscale's version; the
    apply workflow does. Exit 1 when no snapshot could be taken.
    """
    if not REASON.fullmatch(reason):
        raise InputError("--reason", [f"{reason!r}: 1-20 lowercase letters, digits and '-'"])
    findings = snapshot_findings(load_config(config), api_url=api_url, reason=reason)
    _report(findings, f"{config}: snapshot", config, as_json)


def snapshot_findings(config: TunnelConfig, *, api_url: str, reason: str) -> list[Finding]:
    """Snapshot the state volume now: `snapshot`, and `deploy` before a plan that asks for one."""
    client = _client(api_url)
    from homelab_tunnel.digitalocean.api import ApiError
    from homelab_tunnel.digitalocean.snapshots import take_snapshot

    try:
        return take_snapshot(config, client, now=datetime.now(UTC), reason=reason)
    except ApiError as exc:
        return [problem("snapshot", exc.message)]


def _report(findings: list[Finding], what: str, config: Path, as_json: bool) -> None:
    ok = not problems(findings)
    summary = f"{what}: {count_line(findings)}"
    if as_json:
        print_json(findings, summary=summary, ok=ok, extra={"config": str(config)})
    else:
        print_findings(findings, summary=summary, ok=ok)
    if not ok:
        raise typer.Exit(1)


def _token(value: str) -> str:
    """The token, checked without ever echoing it: it is a credential.

    A token with a second line (a paste, `$(cat file)` of a file with two
    lines) used to reach the HTTP header and come back in the error message.
    """
    token = value.strip()
    if not token:
        raise InputError(
            "DIGITALOCEAN_TOKEN",
            [
                "not set: export a DigitalOcean API token (read access is enough for "
                "preflight), created at https://cloud.digitalocean.com/account/api/tokens"
            ],
        )
    if not all("!" <= char <= "~" for char in token):
        raise InputError(
            "DIGITALOCEAN_TOKEN",
            [
                "holds a line break, a blank or another character no API token has "
                "(the value is not shown: it is a secret); export the token alone, on one line"
            ],
        )
    return token


def _check_api_url(url: str) -> None:
    """An https URL of a host, without credentials; shown only with any user:password hidden."""
    try:
        parts = urlsplit(url)
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        parts, port_ok = None, False
    shown = repr(_without_credentials(url))
    printable = all("!" <= char <= "~" for char in url)
    if (
        not printable
        or parts is None
        or not port_ok
        or parts.scheme != "https"
        or not parts.hostname
    ):
        raise InputError(
            "--api-url", [f"{shown} is not an https:// URL (e.g. https://api.digitalocean.com)"]
        )
    if parts.username is not None or parts.password is not None:
        raise InputError(
            "--api-url",
            [
                f"{shown} carries credentials (user:password@); "
                "the token comes from DIGITALOCEAN_TOKEN"
            ],
        )


def _without_credentials(url: str) -> str:
    scheme, separator, rest = url.partition("://")
    authority, slash, path = rest.partition("/")
    if "@" in authority:
        authority = "***@" + authority.rsplit("@", 1)[1]
    return f"{scheme}{separator}{authority}{slash}{path}"
