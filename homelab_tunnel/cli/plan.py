"""`plan-summary`: what a Terraform plan does to the edge, before anyone applies it."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from homelab_tunnel.cli.app import app, reports_input_errors
from homelab_tunnel.plan.classify import read_plan
from homelab_tunnel.plan.model import Danger
from homelab_tunnel.plan.report import render as render_plan


class PlanFormat(StrEnum):
    text = "text"
    markdown = "markdown"
    json = "json"


class FailOn(StrEnum):
    """Danger classes a pipeline can stop on, mildest last."""

    data_loss = "data-loss"
    address_change = "address-change"
    exposure = "exposure"
    downtime = "downtime"

    @property
    def danger(self) -> Danger:
        return Danger[self.name.upper()]


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
    summary = read_plan(plan)
    typer.echo(render_plan(summary, output_format.value), nl=False)
    thresholds = [option.danger for option in (fail_on,) if option is not None]
    if fail_on_data_loss:
        thresholds.append(Danger.DATA_LOSS)
    refusal = summary.refusal(min(thresholds)) if thresholds else None
    if refusal is not None:
        if output_format is not PlanFormat.json:  # the JSON document is all of stdout
            typer.echo(refusal)
        raise typer.Exit(1)
