"""The Typer app, its shared options, and the one path bad input takes to exit code 2."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Annotated, ParamSpec, TypeVar

import typer
from rich.console import Console

from homelab_tunnel.errors import InputError

app = typer.Typer(
    help="One config file to a DigitalOcean edge VM for your homelab.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


# No highlighting and no `:emoji:` codes: paths and names print as they are
# (markup is escaped wherever text comes from outside, see output.py).
def console() -> Console:
    """A console made when it prints: it reads the terminal width (COLUMNS) then, not at import."""
    return Console(highlight=False, soft_wrap=True, emoji=False)


def at_terminal() -> bool:
    """Whether someone can answer a question: stdin is a terminal (and not closed)."""
    stdin = sys.stdin
    return stdin is not None and not stdin.closed and stdin.isatty()


P = ParamSpec("P")
R = TypeVar("R")

ConfigOption = Annotated[
    Path,
    typer.Option("--config", "-c", help="homelab-tunnel TOML config file."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable report on stdout.")]
SshOption = Annotated[
    str,
    typer.Option("--ssh", metavar="root@IP", help="The edge (terraform output -raw reserved_ip)."),
]
DEFAULT_CONFIG = Path("homelab-tunnel.toml")


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


def _show_version(value: bool) -> None:
    if value:
        try:
            typer.echo(f"homelab-tunnel {version('homelab-tunnel')}")
        except PackageNotFoundError:
            typer.echo("homelab-tunnel (not installed as a package)")
        raise typer.Exit()


@app.callback()
def _root(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_show_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """One config file to a DigitalOcean edge VM for your homelab."""
