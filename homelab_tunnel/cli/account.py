"""`preflight`: will this config deploy into this DigitalOcean account?"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Annotated

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
    token = os.environ.get("DIGITALOCEAN_TOKEN", "").strip()
    if not token:
        raise InputError(
            "DIGITALOCEAN_TOKEN",
            [
                "not set: export a DigitalOcean API token (read access is enough for "
                "preflight), created at https://cloud.digitalocean.com/account/api/tokens"
            ],
        )
    if not api_url.startswith("https://"):
        raise InputError("--api-url", [f"{api_url!r} is not an https:// URL"])
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
