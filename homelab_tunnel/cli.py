"""`homelab-tunnel`: thin commands over the library. Exit 0 ok, 1 problem found, 2 bad input."""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from homelab_tunnel import doctor as doctor_lib
from homelab_tunnel.checkup import examine
from homelab_tunnel.config import TunnelConfig, load_config
from homelab_tunnel.errors import InputError
from homelab_tunnel.gate import version_gate
from homelab_tunnel.join import join_steps
from homelab_tunnel.plan_report import render as render_plan
from homelab_tunnel.plan_summary import Danger, read_plan

app = typer.Typer(
    help="One config file to a DigitalOcean edge VM for your homelab.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console()

P = ParamSpec("P")
R = TypeVar("R")

ConfigOption = Annotated[
    Path,
    typer.Option("--config", "-c", help="homelab-tunnel TOML config file."),
]


def reports_input_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Bad input becomes one stderr line per problem and exit code 2."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except InputError as exc:
            for line in exc.lines():
                typer.echo(line, err=True)
            raise typer.Exit(2) from None

    return wrapper


def _config_table(config: TunnelConfig) -> Table:
    table = Table(title=f"{config.name} ({config.region}, {config.size})", show_lines=False)
    table.add_column("public name")
    table.add_column("goes to")
    for site in config.sites:
        table.add_row(site.domain, f"{site.scheme}://{config.upstream_host(site)}:{site.port}")
    table.add_row(config.headscale.domain, "Headscale on the edge (127.0.0.1:8080)")
    return table


def _config_facts(config: TunnelConfig) -> list[str]:
    ssh = ", ".join(config.ssh_allowed_cidrs) if config.ssh_allowed_cidrs else "closed"
    zone = "created by this stack" if config.dns.create_zone else "existing"
    return [
        f"DNS zone: {config.dns.zone} ({zone})",
        f"tailnet base domain: {config.headscale.base_domain}",
        f"SSH (TCP 22): {ssh}",
        f"reserved IPv6: {'yes' if config.reserved_ipv6 else 'no'}",
        f"state volume: {config.volume_name}, {config.volume.size_gb} GiB",
        f"Terraform state: {config.backend.type}",
    ]


@app.command()
@reports_input_errors
def check(
    config: ConfigOption = Path("homelab-tunnel.toml"),
    upgrade_from: Annotated[
        str | None,
        typer.Option(
            "--upgrade-from",
            metavar="X.Y.Z",
            help="Headscale release the edge runs now; fail if moving to the config's is refused.",
        ),
    ] = None,
) -> None:
    """Validate a config file, show what it describes, and run the version gate."""
    loaded = load_config(config)
    results = version_gate(loaded, upgrade_from=upgrade_from)
    console.print(_config_table(loaded))
    for fact in _config_facts(loaded):
        console.print(fact)
    console.print(f"[green]ok[/green]: {config} is valid")
    for result in results:
        mark = "[green]ok[/green]" if result.ok else "[red]problem[/red]"
        console.print(f"{mark}: {result.line}", highlight=False, soft_wrap=True)
    failed = [result for result in results if not result.ok]
    if failed:
        console.print(f"[red]version gate failed[/red]: {len(failed)} problem(s)")
        raise typer.Exit(1)


@app.command()
@reports_input_errors
def synth(
    config: ConfigOption = Path("homelab-tunnel.toml"),
    out: Annotated[Path, typer.Option("--out", "-o", help="Output directory.")] = Path("cdktf.out"),
) -> None:
    """Synthesize the Terraform JSON for the edge into --out."""
    loaded = load_config(config)
    from homelab_tunnel.stacks.app import synthesize  # cdktf is slow to import
    from homelab_tunnel.synth_summary import summarize_stack

    summary = summarize_stack(synthesize(loaded, out))
    lines = [
        f"stack [bold]{summary.stack}[/bold] -> {summary.path}",
        f"{summary.resource_count} resources:",
        *(f"  {count} {kind}" for kind, count in sorted(summary.resources.items())),
        "reserved IP: known after apply "
        f"({summary.outputs['reserved_ip']}; `terraform output -raw reserved_ip`)",
        "sites: " + ", ".join(site.domain for site in loaded.sites),
    ]
    for line in lines:
        console.print(line, soft_wrap=True, highlight=False)


class RenderedFile(StrEnum):
    caddyfile = "caddyfile"
    headscale = "headscale"
    policy = "policy"
    user_data = "user-data"


@app.command()
@reports_input_errors
def render(
    file: Annotated[RenderedFile, typer.Argument(help="Which file to print.")],
    config: ConfigOption = Path("homelab-tunnel.toml"),
) -> None:
    """Print one file exactly as the edge gets it (user-data: as cloud-init gets it)."""
    from homelab_tunnel.render.caddyfile import render_caddyfile
    from homelab_tunnel.render.cloud_init import render_user_data
    from homelab_tunnel.render.headscale import render_headscale_config, render_policy

    renderers = {
        RenderedFile.caddyfile: render_caddyfile,
        RenderedFile.headscale: render_headscale_config,
        RenderedFile.policy: render_policy,
        RenderedFile.user_data: render_user_data,
    }
    typer.echo(renderers[file](load_config(config)), nl=False)


# ---------------------------------------------------------------------------
# doctor
# ---------------------------------------------------------------------------


def _doctor_table(report: doctor_lib.Report) -> Table:
    minimum = report.minimum.series if report.minimum else "?"
    table = Table(
        title=f"tailnet seen from the edge (Headscale {report.headscale_version}, "
        f"clients {minimum}+)"
    )
    for column in ("node", "tailnet address", "path", "client", "node key"):
        table.add_column(column)
    for node in report.nodes:
        name = escape(node.name) + (" (this node)" if node.path is None else "")
        if node.upstream:
            name += " (site upstream)"
        if node.path is None:
            path = "-"
        else:
            colour = "green" if node.path.kind == "direct" else "red" if node.upstream else "yellow"
            path = f"[{colour}]{escape(str(node.path))}[/{colour}]"
        client = escape(node.version or "unknown")
        if node.supported is False:
            client = f"[red]{client} (unsupported)[/red]"
        key = node.key_note or (
            node.key_expiry.date().isoformat() if node.key_expiry else "no expiry"
        )
        table.add_row(name, node.addresses[0] if node.addresses else "", path, client, key)
    return table


class PlanFormat(StrEnum):
    text = "text"
    markdown = "markdown"
    json = "json"


class FailOn(StrEnum):
    """Danger classes a pipeline can stop on, mildest last."""

    data_loss = "data-loss"
    address_change = "address-change"
    downtime = "downtime"

    @property
    def danger(self) -> Danger:
        return {
            FailOn.data_loss: Danger.DATA_LOSS,
            FailOn.address_change: Danger.ADDRESS_CHANGE,
            FailOn.downtime: Danger.DOWNTIME,
        }[self]


@app.command("plan-summary")
@reports_input_errors
def plan_summary(
    plan: Annotated[
        str,
        typer.Argument(
            metavar="PLAN.json", help="`terraform show -json PLANFILE` output; '-' reads stdin."
        ),
    ],
    output_format: Annotated[
        PlanFormat, typer.Option("--format", help="text, markdown (PR comment) or json.")
    ] = PlanFormat.text,
    fail_on: Annotated[
        FailOn | None,
        typer.Option("--fail-on", help="Exit 1 when the plan has a change of this class or worse."),
    ] = None,
    fail_on_data_loss: Annotated[
        bool, typer.Option("--fail-on-data-loss", help="Short for --fail-on data-loss.")
    ] = False,
) -> None:
    """Summarize a Terraform plan: replacements, deletions and what they cost."""
    summary = read_plan(plan, sys.stdin.buffer)
    typer.echo(render_plan(summary, output_format.value), nl=False)
    thresholds = [option.danger for option in (fail_on,) if option is not None]
    if fail_on_data_loss:
        thresholds.append(Danger.DATA_LOSS)
    if thresholds and summary.reaches(min(thresholds)):
        threshold = min(thresholds)
        found = "an errored plan" if summary.errored else f"a {summary.verdict_label} change"
        typer.echo(f"{summary.source}: refusing {found} (--fail-on {threshold.option})", err=True)
        raise typer.Exit(1)


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
            help="Run on the edge over ssh: ping each upstream, read status, whois, journal.",
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
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable report.")] = False,
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
    )
    if as_json:
        typer.echo(json.dumps(report.to_json(), indent=2))
    else:
        console.print(_doctor_table(report))
        lines = [f"journal: {escape(rejection.example)}" for rejection in report.rejections]
        lines += [f"[red]problem[/red]: {escape(line)}" for line in report.problems]
        lines += [f"[yellow]warning[/yellow]: {escape(line)}" for line in report.warnings]
        lines += [f"note: {escape(line)}" for line in report.notes]
        verdict = "[green]ok[/green]" if report.ok else "[red]problems found[/red]"
        lines.append(f"{verdict}: {escape(report.summary())}")
        for line in lines:
            console.print(line, highlight=False, soft_wrap=True)
    if not report.ok:
        raise typer.Exit(1)


# ---------------------------------------------------------------------------
# join-command
# ---------------------------------------------------------------------------


@app.command("join-command")
@reports_input_errors
def join_command(
    config: ConfigOption = Path("homelab-tunnel.toml"),
    edge: Annotated[
        str,
        typer.Option(
            "--edge", help="The edge's reserved IP, if known (`terraform output -raw reserved_ip`)."
        ),
    ] = "",
) -> None:
    """Print the steps that join the homelab to the edge's Headscale and check the path."""
    typer.echo(join_steps(load_config(config), config_path=str(config), edge=edge), nl=False)


# ---------------------------------------------------------------------------
# preflight
# ---------------------------------------------------------------------------


@app.command()
@reports_input_errors
def preflight(
    config: ConfigOption = Path("homelab-tunnel.toml"),
    api_url: Annotated[
        str,
        typer.Option(
            "--api-url",
            envvar="DIGITALOCEAN_API_URL",
            help="DigitalOcean API endpoint (https).",
        ),
    ] = "https://api.digitalocean.com",
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
    from dataclasses import replace  # pydo is slow to import; only this command needs it

    from homelab_tunnel import do_api
    from homelab_tunnel.preflight import run_preflight

    api = do_api.DigitalOceanApi(token, replace(do_api.DEFAULT_SETTINGS, endpoint=api_url))
    checks = run_preflight(loaded, api)
    for check in checks:
        typer.echo(check.line())
    failed = sum(not check.ok for check in checks)
    if failed:
        typer.echo(f"{config}: {failed} preflight check(s) failed", err=True)
        raise typer.Exit(1)


def main() -> None:
    app()
