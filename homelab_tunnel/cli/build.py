"""Commands on the config itself: check it, synthesize it, render the edge's files."""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from homelab_tunnel.cli.app import (
    DEFAULT_CONFIG,
    ConfigOption,
    JsonOption,
    app,
    console,
    reports_input_errors,
)
from homelab_tunnel.cli.output import finding_markup, print_findings, print_json, print_lines
from homelab_tunnel.config import SpacesBackend, TunnelConfig, load_config
from homelab_tunnel.config.advice import config_warnings
from homelab_tunnel.cost import monthly_line
from homelab_tunnel.errors import InputError
from homelab_tunnel.findings import count_line, note, problems
from homelab_tunnel.infra.outdir import check_out_dir
from homelab_tunnel.infra.state import check_state_location, state_file
from homelab_tunnel.payload import (
    USER_DATA_LIMIT,
    checked_user_data_size,
    edge_config_object,
    user_data,
)
from homelab_tunnel.render.sites import describe_policy, site_document, site_documents
from homelab_tunnel.tailnet.gate import version_gate

OutOption = Annotated[
    Path, typer.Option("--out", "-o", help="Output directory (replaced as a whole).")
]
DEFAULT_OUT = Path("cdktf.out")


def _config_table(config: TunnelConfig) -> Table:
    table = Table(title=escape(f"{config.name} ({config.region}, {config.size})"))
    table.add_column("public name")
    table.add_column("goes to")
    table.add_column("policy")
    for site in config.sites:
        table.add_row(
            escape(site.domain),
            escape(f"{site.scheme}://{config.upstream_host(site)}:{site.port}"),
            escape(describe_policy(site_document(config, site))),
        )
    table.add_row(
        escape(config.headscale.domain), "Headscale on the edge (127.0.0.1:8080)", "its own logins"
    )
    for forward in config.ports:
        ports = f"{forward.upstream_first}" + (
            f"-{forward.upstream_last}" if forward.upstream_last != forward.upstream_first else ""
        )
        table.add_row(
            escape(f"{forward.protocol.upper()} {forward.port} (reserved IPv4)"),
            escape(f"{config.upstream_host(forward)}:{ports}, forwarded in the kernel"),
            "none: raw traffic, as the firewall allows",
        )
    return table


def _config_facts(config: TunnelConfig, user_data_size: int) -> dict[str, str]:
    ssh = ", ".join(config.ssh_allowed_cidrs) if config.ssh_allowed_cidrs else "closed"
    zone = "created by this stack" if config.dns.create_zone else "existing"
    edge_config = edge_config_object(config)
    return {
        "DNS zone": f"{config.dns.zone} ({zone})",
        "tailnet base domain": config.headscale.base_domain,
        "SSH (TCP 22)": ssh,
        "reserved IPv6": "yes" if config.reserved_ipv6 else "no",
        "state volume": f"{config.volume_name}, {config.volume.size_gb} GiB",
        "Terraform state": config.backend.type,
        "backups": (
            f"Spaces bucket {config.backup_bucket} in {config.backup.region}, "
            f"{config.backup.retention_days} days"
            if config.backup.enabled
            else "off"
        ),
        "config channel": (
            f"Spaces bucket {config.channel_bucket} in {config.channel_region}: config version "
            f"{edge_config.version} ({len(edge_config.body.encode())} bytes), applied in place"
        ),
        "estimated cost": monthly_line(config),
        "user_data": f"{user_data_size} of {USER_DATA_LIMIT} bytes (DigitalOcean's limit; "
        "the same for any number of sites)",
    }


@app.command()
@reports_input_errors
def check(
    config: ConfigOption = DEFAULT_CONFIG,
    upgrade_from: Annotated[
        str | None,
        typer.Option(
            "--upgrade-from",
            metavar="X.Y.Z",
            help="Headscale release the edge runs now; fail if moving to the config's is refused.",
        ),
    ] = None,
    ssh: Annotated[
        str | None,
        typer.Option(
            "--ssh",
            metavar="root@IP",
            help="Read the release that last ran on the edge's volume, as --upgrade-from.",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Validate a config file, show what it describes, and run the version gate."""
    loaded = load_config(config)
    size = checked_user_data_size(loaded, str(config))
    if ssh is not None:
        if upgrade_from is not None:
            raise InputError("--ssh", ["give --upgrade-from or --ssh, not both"])
        from homelab_tunnel.tailnet.on_edge import running_headscale
        from homelab_tunnel.tailnet.ssh import known_hosts_file

        upgrade_from = running_headscale(ssh, known_hosts_file(config))
    findings = version_gate(loaded, upgrade_from=upgrade_from) + config_warnings(loaded)
    if ssh is not None and upgrade_from is None:
        findings.append(
            note(
                "upgrade", f"no Headscale has run on the volume of {ssh} yet: any release may start"
            )
        )
    ok = not problems(findings)
    gate = "passed" if ok else "failed"
    summary = f"{config} is valid; version gate {gate}: {count_line(findings)}"
    facts = _config_facts(loaded, size)
    if as_json:
        extra = {"config": str(config), "facts": facts, "sites": site_documents(loaded)}
        print_json(findings, summary=summary, ok=ok, extra=extra)
    else:
        console().print(_config_table(loaded))
        print_lines(f"{name}: {value}" for name, value in facts.items())
        print_findings(findings, summary=summary, ok=ok)
    if not ok:
        raise typer.Exit(1)


@app.command()
@reports_input_errors
def synth(
    config: ConfigOption = DEFAULT_CONFIG,
    out: OutOption = DEFAULT_OUT,
) -> None:
    """Synthesize the Terraform JSON for the edge into --out (replaced as a whole)."""
    loaded = load_config(config)
    checked_user_data_size(loaded, str(config))
    from homelab_tunnel.infra.stack_summary import summarize_stack

    summary = summarize_stack(synthesize_into(out, loaded, config))
    print_lines(
        [
            f"stack {summary.stack} -> {summary.path}",
            f"{summary.resource_count} resources:",
            *(f"  {count} {kind}" for kind, count in sorted(summary.resources.items())),
            "reserved IP: known after apply "
            f"({summary.outputs['reserved_ip']}; `terraform output -raw reserved_ip`)",
            "sites: " + ", ".join(site.domain for site in loaded.sites),
            f"Terraform state: {_state_location(loaded, config)}",
        ]
    )
    for finding in config_warnings(loaded):
        console().print(finding_markup(finding))


def synthesize_into(out: Path, config: TunnelConfig, config_path: Path) -> Path:
    """Check that --out may be replaced and state stays put, then synthesize; the JSON's path."""
    check_out_dir(out, config=config_path, cwd=Path.cwd())
    check_state_location(config, config_path, Path.cwd())
    from homelab_tunnel.infra.synth import synthesize  # cdktf is slow to import: only now

    return synthesize(config, out, config_path=config_path)


def _state_location(config: TunnelConfig, config_path: Path) -> str:
    backend = config.backend
    if isinstance(backend, SpacesBackend):
        return f"Spaces bucket {backend.bucket} ({backend.region}), key {backend.key}"
    return f"{state_file(config, config_path)} (local file, beside the config)"


class RenderedFile(StrEnum):
    caddyfile = "caddyfile"
    headscale = "headscale"
    policy = "policy"
    user_data = "user-data"
    edge_config = "edge-config"


@app.command()
@reports_input_errors
def render(
    file: Annotated[RenderedFile, typer.Argument(help="Which file to print.")],
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Print one file exactly as the edge gets it (user-data: as cloud-init gets it;
    edge-config: the config object Terraform writes to the config bucket)."""
    from homelab_tunnel.crawlers import ai_crawlers
    from homelab_tunnel.render.caddyfile import render_caddyfile
    from homelab_tunnel.render.headscale import render_headscale_config
    from homelab_tunnel.render.policy import render_policy

    renderers: dict[RenderedFile, Callable[[TunnelConfig], str]] = {
        RenderedFile.caddyfile: lambda loaded: render_caddyfile(loaded, ai_crawlers()),
        RenderedFile.headscale: render_headscale_config,
        RenderedFile.policy: render_policy,
        RenderedFile.user_data: user_data,
        RenderedFile.edge_config: lambda loaded: edge_config_object(loaded).body,
    }
    typer.echo(renderers[file](load_config(config)), nl=False)
