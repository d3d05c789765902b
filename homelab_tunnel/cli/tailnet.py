"""Commands about the tailnet: doctor (is every upstream direct?) and join-command."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from homelab_tunnel.cli.app import (
    DEFAULT_CONFIG,
    ConfigOption,
    JsonOption,
    app,
    console,
    reports_input_errors,
)
from homelab_tunnel.cli.output import literal, print_findings, print_json, print_lines
from homelab_tunnel.config import load_config
from homelab_tunnel.config.values import is_hostname
from homelab_tunnel.edge.verdicts import NodeReport, Report
from homelab_tunnel.errors import InputError
from homelab_tunnel.tailnet.evidence import examine
from homelab_tunnel.tailnet.join import join_steps, site_machines
from homelab_tunnel.tailnet.join_docker import DEFAULT_TAG, checked_tag, compose_service
from homelab_tunnel.tailnet.ssh import host_keys, known_hosts_file


def _path_cell(node: NodeReport) -> str:
    if node.path is None:
        return "-"
    colour = "green" if node.path.kind == "direct" else "red" if node.upstream else "yellow"
    return f"[{colour}]{literal(str(node.path))}[/{colour}]"


def _doctor_table(report: Report) -> Table:
    minimum = report.minimum.series if report.minimum else "?"
    table = Table(
        title=f"tailnet seen from the edge (Headscale {literal(report.headscale_version)}, "
        f"clients {minimum}+)"
    )
    for column in ("node", "tailnet address", "path", "client", "node key"):
        table.add_column(column)
    for node in report.nodes:
        name = literal(node.name) + (" (this node)" if node.path is None else "")
        if node.upstream:
            name += " (site upstream)"
        client = literal(node.version or "unknown")
        if node.supported is False:
            client = f"[red]{client} (unsupported)[/red]"
        key = node.key_note or (
            node.key_expiry.date().isoformat() if node.key_expiry else "no expiry"
        )
        address = literal(node.addresses[0]) if node.addresses else ""
        table.add_row(name, address, _path_cell(node), client, key)
    return table


@app.command()
@reports_input_errors
def doctor(
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="Config whose sites' upstreams must be direct."),
    ] = None,
    upstream: Annotated[
        list[str] | None,
        typer.Option(
            "--upstream",
            metavar="NAME",
            help="Tailnet name or address that must be direct (repeatable).",
        ),
    ] = None,
    status: Annotated[
        str | None,
        typer.Option(
            "--status", metavar="FILE", help="Saved `tailscale status --json`; - for stdin."
        ),
    ] = None,
    ssh: Annotated[
        str | None,
        typer.Option(
            "--ssh",
            metavar="root@IP",
            help="Run on the edge over ssh: ping each upstream, read status, whois, journal "
            "(its host key is checked against <config>.known_hosts, learned at first contact).",
        ),
    ] = None,
    whois: Annotated[
        Path | None,
        typer.Option(
            "--whois", metavar="FILE", help="Saved `tailscale whois --json` outputs (versions)."
        ),
    ] = None,
    journal: Annotated[
        Path | None,
        typer.Option("--journal", metavar="FILE", help="Saved Headscale journal text."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Verdict per tailnet peer: direct or relayed, client version, key expiry."""
    loaded = load_config(config) if config is not None else None
    upstreams = loaded.upstream_hosts if loaded else []
    upstreams += [name for name in upstream or [] if name not in upstreams]
    report = examine(
        config=loaded,
        upstreams=upstreams,
        status=status,
        ssh=ssh,
        whois=whois,
        journal=journal,
        now=datetime.now(UTC),
        known_hosts=known_hosts_file(config or DEFAULT_CONFIG),
    )
    if as_json:
        print_json(report.findings, summary=report.summary(), ok=report.ok, extra=report.details())
    else:
        console().print(_doctor_table(report))
        print_lines(f"journal: {rejection.example}" for rejection in report.rejections)
        print_findings(report.findings, summary=report.summary(), ok=report.ok)
    if not report.ok:
        raise typer.Exit(1)


class JoinTarget(StrEnum):
    apt = "apt"
    docker = "docker"


@app.command("join-command")
@reports_input_errors
def join_command(
    config: ConfigOption = DEFAULT_CONFIG,
    edge: Annotated[
        str,
        typer.Option(
            "--edge", help="The edge's reserved IP, if known (`terraform output -raw reserved_ip`)."
        ),
    ] = "",
    target: Annotated[
        JoinTarget,
        typer.Option(
            "--target",
            help="apt: a script for a Debian/Ubuntu (or any systemd) host; docker: a compose "
            "service with the official tailscale/tailscale image.",
        ),
    ] = JoinTarget.apt,
    machine: Annotated[
        str | None,
        typer.Option("--machine", help="Which of the sites' machines joins (default: the first)."),
    ] = None,
    image_tag: Annotated[
        str,
        typer.Option(
            "--image-tag",
            help="docker: the image's tag; refused when older than Headscale's minimum.",
        ),
    ] = DEFAULT_TAG,
    userspace: Annotated[
        bool,
        typer.Option(
            "--userspace", help="docker: userspace networking (no /dev/net/tun, no NET_ADMIN)."
        ),
    ] = False,
) -> None:
    """Print the steps that join the homelab to the edge's Headscale and check the path."""
    loaded = load_config(config)
    _check_edge(edge)
    if target is JoinTarget.apt:
        if userspace or image_tag != DEFAULT_TAG:
            raise InputError("--target", ["--image-tag and --userspace are for --target docker"])
        typer.echo(
            join_steps(
                loaded,
                config_path=str(config),
                edge=edge,
                machine=machine,
                host_keys=host_keys(known_hosts_file(config)),
            ),
            nl=False,
        )
        return
    (name, *_) = site_machines(loaded, machine)
    tag = checked_tag(loaded, image_tag)
    service = compose_service(loaded, machine=name, tag=tag, userspace=userspace, edge=edge)
    typer.echo(service, nl=False)


def _check_edge(edge: str) -> None:
    """An address or a host name: it is printed into a script or a compose file's comments."""
    try:
        ipaddress.ip_address(edge)
    except ValueError:
        if edge and not is_hostname(edge):
            raise InputError(
                "--edge", [f"{edge!r} is not an IP address or a host name (e.g. 203.0.113.10)"]
            ) from None
