"""The command reference, written from the CLI itself so `--help` and the docs say the same.

`make docs-reference` writes it to docs/reference/cli.md; a test compares the
two, so a new option or a changed help text is a page change in the same commit.
Typer builds its commands on a click of its own (typer._click), so commands and
parameters are read by their attributes, not their classes.
"""

from __future__ import annotations

import enum
from pathlib import PurePath
from typing import Any

import typer.main

from homelab_tunnel.cli import app

GENERATED = (
    "<!-- Generated from homelab_tunnel/cli/ by `make docs-reference`: do not edit by hand. -->"
)

PREAMBLE = """\
Every command of `homelab-tunnel` with its options, as `--help` prints them.
Exit codes: 0 all is well, 1 a problem was found (a failed check, a plan over
the threshold), 2 bad input (the message names the file, the field and what
is allowed)."""


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def _default(param: Any) -> str:
    default = param.default
    if getattr(param, "is_flag", False) and not param.secondary_opts:
        return ""
    if default is None or default == "" or default == () or callable(default):
        return ""
    if isinstance(default, enum.Enum):
        default = default.value
    if isinstance(default, bool):
        flag: str = param.opts[0] if default else param.secondary_opts[0]
        return f"`{flag}`"
    if isinstance(default, PurePath):
        default = str(default)
    return f"`{default}`"


def _name(param: Any) -> str:
    if param.param_type_name == "argument":
        return f"`{str(param.name).upper()}`"
    names = [*param.opts, *param.secondary_opts]
    return ", ".join(f"`{name}`" for name in names)


def _params(command: Any) -> list[str]:
    rows = ["| argument or option | meaning | default |", "|---|---|---|"]
    for param in command.params:
        if getattr(param, "hidden", False) or param.name in ("help",):
            continue
        meaning = getattr(param, "help", None) or ""
        extras = []
        descriptor = getattr(param, "type_descriptor", None)
        if descriptor is not None and descriptor.is_choice:
            extras.append("one of " + ", ".join(f"`{choice}`" for choice in descriptor.choices))
        if param.required:
            extras.append("required")
        if getattr(param, "multiple", False) and "repeatable" not in meaning:
            extras.append("repeatable")
        if param.envvar:
            extras.append(f"env: {param.envvar}")
        if extras:
            meaning = f"{meaning} ({', '.join(extras)})".strip()
        rows.append(f"| {_name(param)} | {_cell(meaning)} | {_default(param)} |")
    return rows if len(rows) > 2 else []


def _commands(group: Any, prefix: str) -> list[str]:
    out: list[str] = []
    for name, command in group.commands.items():
        if command.hidden:
            continue
        path = f"{prefix} {name}"
        out += ["", f"## `{path}`", ""]
        help_text = (command.help or "").strip()
        for paragraph in help_text.split("\n\n"):
            out += [" ".join(paragraph.split()), ""]
        out += _params(command)
        if hasattr(command, "commands"):
            out += _commands(command, path)
    return out


def cli_reference(root: Any = app) -> str:
    """The reference page for the Typer app `root` (tests pass a changed one)."""
    group = typer.main.get_command(root)
    lines = [
        "# Command reference",
        "",
        GENERATED,
        "",
        PREAMBLE,
        *_commands(group, "homelab-tunnel"),
    ]
    text = "\n".join(lines)
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text.rstrip() + "\n"


if __name__ == "__main__":  # pragma: no cover - `make docs-reference`
    print(cli_reference(), end="")
