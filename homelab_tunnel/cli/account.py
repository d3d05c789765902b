"""`preflight`: will this config deploy into this DigitalOcean account?"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Annotated
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
from homelab_tunnel.config import load_config
from homelab_tunnel.errors import InputError
from homelab_tunnel.findings import count_line, problems


@app.command()
@reports_input_errors
def preflight(
    config: ConfigOption = DEFAULT_CONFIG,
    api_url: Annotated[
        str,
        typer.Option(
            "--api-url",
            envvar="DIGITALOCEAN_API_URL",
            help="DigitalOcean API endpoint (https).",
        ),
    ] = "https://api.digitalocean.com",
    as_json: JsonOption = False,
) -> None:
    """Check the account before the first apply: token, SSH keys, zone, region, records.

    Reads DIGITALOCEAN_TOKEN. One line per check; exit 1 when any check fails.
    """
    loaded = load_config(config)
    token = _token(os.environ.get("DIGITALOCEAN_TOKEN", ""))
    _check_api_url(api_url)
    # pydo is slow to import; only this command needs it.
    from homelab_tunnel.digitalocean import api
    from homelab_tunnel.digitalocean.preflight import run_preflight

    client = api.DigitalOceanApi(token, replace(api.DEFAULT_SETTINGS, endpoint=api_url))
    findings = run_preflight(loaded, client)
    ok = not problems(findings)
    summary = f"{config}: preflight: {count_line(findings)}"
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
