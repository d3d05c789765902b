"""`diff` and `deploy`: plan and apply the edge from the installed tool, with the workflows' gates.

The same steps as .github/workflows/apply.yml, for one person at a terminal:
synthesize, `terraform init`, `plan` into a private file, the plan-summary
of exactly that plan, the `--fail-on` gate (data loss by default), a volume
snapshot when the plan puts the volume's state at stake, then `apply` of that
saved plan once confirmed. Only Terraform needs installing.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from homelab_tunnel.cli.account import DEFAULT_API_URL, ApiUrlOption, snapshot_findings
from homelab_tunnel.cli.app import (
    DEFAULT_CONFIG,
    ConfigOption,
    app,
    at_terminal,
    reports_input_errors,
)
from homelab_tunnel.cli.build import DEFAULT_OUT, OutOption, synthesize_into
from homelab_tunnel.cli.output import print_findings, print_lines
from homelab_tunnel.cli.plan import FailOn
from homelab_tunnel.config import TunnelConfig, load_config
from homelab_tunnel.deploy.needs import find_terraform, missing_credentials
from homelab_tunnel.deploy.terraform import StepFailed, Terraform, private_plan_file
from homelab_tunnel.errors import InputError
from homelab_tunnel.findings import count_line, problems
from homelab_tunnel.payload import checked_user_data_size
from homelab_tunnel.plan.classify import summarize_text
from homelab_tunnel.plan.model import Danger, PlanSummary
from homelab_tunnel.plan.report import render as render_plan

FailOnOption = Annotated[
    FailOn | None,
    typer.Option("--fail-on", help="Stop when the plan has a change of this class or worse."),
]


def _prepare(
    command: str, config_path: Path, out: Path, api_url: str
) -> tuple[TunnelConfig, Terraform]:
    """Everything checked up front (config, Terraform, credentials, --out), then synthesized."""
    config = load_config(config_path)
    checked_user_data_size(config, str(config_path))
    env = dict(os.environ)
    if api_url != DEFAULT_API_URL:
        env["DIGITALOCEAN_API_URL"] = api_url  # the provider and the snapshot: one API
    executable, missing = find_terraform(env)
    missing += missing_credentials(config, env)
    if missing or executable is None:
        raise InputError(command, missing)
    stack = synthesize_into(out, config, config_path)
    print_lines([f"synthesized {stack}"])
    return config, Terraform(executable, stack.parent, env)


def _plan(terraform: Terraform, plan_file: Path) -> PlanSummary:
    terraform.init()
    terraform.plan(plan_file)
    summary = summarize_text(terraform.show_json(plan_file), "terraform plan")
    typer.echo(render_plan(summary, "text"), nl=False)
    return summary


def _gate(summary: PlanSummary, threshold: Danger | None) -> None:
    refusal = summary.refusal(threshold) if threshold is not None else None
    if refusal is not None:
        typer.echo(f"{refusal}; nothing was applied")
        raise typer.Exit(1)


def _terraform_failed(exc: StepFailed) -> typer.Exit:
    typer.echo(f"{exc} (its output is above); nothing was applied")
    return typer.Exit(1)


@app.command()
@reports_input_errors
def diff(
    config: ConfigOption = DEFAULT_CONFIG,
    out: OutOption = DEFAULT_OUT,
    fail_on: FailOnOption = None,
    api_url: ApiUrlOption = DEFAULT_API_URL,
) -> None:
    """Synthesize and `terraform plan`: what deploy would change, with plan-summary's verdict.

    Needs Terraform 1.10+ on PATH, DIGITALOCEAN_TOKEN and a Spaces key pair
    (SPACES_ACCESS_KEY_ID/SECRET: the config bucket, the backup bucket), plus
    AWS_ACCESS_KEY_ID/SECRET for state in Spaces. Exit 1 with --fail-on when
    the plan reaches that class.
    """
    _, terraform = _prepare("diff", config, out, api_url)
    try:
        with private_plan_file() as plan_file:
            summary = _plan(terraform, plan_file)
    except StepFailed as exc:
        raise _terraform_failed(exc) from None
    _gate(summary, fail_on.danger if fail_on else None)


@app.command()
@reports_input_errors
def deploy(
    config: ConfigOption = DEFAULT_CONFIG,
    out: OutOption = DEFAULT_OUT,
    fail_on: FailOnOption = None,
    allow_data_loss: Annotated[
        bool,
        typer.Option(
            "--allow-data-loss",
            help="Apply even a plan that deletes or replaces the state volume or the DNS zone.",
        ),
    ] = False,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Apply without asking (needed without a terminal).")
    ] = False,
    api_url: ApiUrlOption = DEFAULT_API_URL,
) -> None:
    """Plan, show plan-summary's verdict, snapshot the volume if the plan asks, apply that plan.

    Refuses a data-loss plan unless --allow-data-loss (--fail-on sets another
    threshold), and asks before applying unless --yes. Needs what diff needs;
    the snapshot uses the same DIGITALOCEAN_TOKEN.
    """
    if allow_data_loss and fail_on is not None:
        raise InputError("--allow-data-loss", ["give --allow-data-loss or --fail-on, not both"])
    if not yes and not at_terminal():
        raise InputError(
            "deploy", ["no terminal to confirm on; pass --yes to apply without asking"]
        )
    threshold = fail_on.danger if fail_on else None if allow_data_loss else Danger.DATA_LOSS
    loaded, terraform = _prepare("deploy", config, out, api_url)
    try:
        with private_plan_file() as plan_file:
            summary = _plan(terraform, plan_file)
            _gate(summary, threshold)
            if not summary.changes:
                typer.echo("nothing to apply")
                return
            if not yes and not typer.confirm("Apply exactly this plan?", default=False):
                typer.echo("not applied: the answer was no")
                raise typer.Exit(1)
            if summary.snapshot_first:
                _snapshot(loaded, api_url)
            terraform.apply(plan_file)
    except StepFailed as exc:
        if exc.step == "apply":
            typer.echo(f"{exc} (its output is above); run deploy again once fixed")
            raise typer.Exit(1) from None
        raise _terraform_failed(exc) from None


def _snapshot(config: TunnelConfig, api_url: str) -> None:
    """The workflow's step before a plan that replaces the droplet or moves Headscale's version."""
    findings = snapshot_findings(config, api_url=api_url, reason="pre-apply")
    ok = not problems(findings)
    summary = f"snapshot before applying: {count_line(findings)}"
    print_findings(findings, summary=summary, ok=ok)
    if not ok:
        typer.echo("the plan asks for a snapshot first and none was taken; nothing was applied")
        raise typer.Exit(1)
