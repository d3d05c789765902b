"""The command reference is written from the Typer app: what `--help` says, the page says."""

from __future__ import annotations

from typing import Annotated

import typer
from support.config import ROOT
from typer.testing import CliRunner

from homelab_tunnel.cli import app
from homelab_tunnel.cli.reference import cli_reference


def test_every_command_has_a_section() -> None:
    page = cli_reference()
    for name in ("init", "check", "preflight", "diff", "deploy", "join-command", "doctor"):
        assert f"## `homelab-tunnel {name}`" in page
    assert "## `homelab-tunnel backups restore`" in page


def test_options_carry_their_help_and_default() -> None:
    page = cli_reference()
    assert "| `--config`, `-c` | homelab-tunnel TOML config file. | `homelab-tunnel.toml` |" in page
    assert "(one of `apt`, `docker`) | `apt` |" in page
    assert "| `--site` | A site (repeatable). |" in page


def test_help_text_and_page_agree() -> None:
    """The words of `join-command --help` are the page's words (rich may wrap them)."""
    result = CliRunner(env={"COLUMNS": "300", "NO_COLOR": "1"}).invoke(
        app, ["join-command", "--help"]
    )
    assert "Which of the sites' machines joins (default: the first)." in result.output
    assert "Which of the sites' machines joins (default: the first)." in cli_reference()


def test_a_new_option_appears_without_touching_the_generator() -> None:
    grown = typer.Typer()

    @grown.command()
    def status(
        watch: Annotated[bool, typer.Option("--watch", help="Redraw every second.")] = False,
    ) -> None:
        """Live view of the edge."""

    @grown.command()
    def other() -> None:
        """Something else."""

    page = cli_reference(grown)
    assert "## `homelab-tunnel status`" in page
    assert "| `--watch` | Redraw every second. |" in page
    assert page != (ROOT / "docs" / "reference" / "cli.md").read_text()


def test_committed_page_is_the_generated_one() -> None:
    page = (ROOT / "docs" / "reference" / "cli.md").read_text()
    assert page == cli_reference(), "run `make docs-reference`"
