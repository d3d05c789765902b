"""The one renderer for findings: a line each on the terminal, or one JSON document.

Every report goes to stdout, summary included; stderr carries only bad-input
errors (exit 2). Text from configs, files and servers is escaped, so a name
with `[red]` in it prints literally and one with an escape sequence cannot
drive the terminal.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from rich.markup import escape

from homelab_tunnel.cli.app import console
from homelab_tunnel.findings import Finding, Severity, one_line

_COLOURS = {
    Severity.OK: "green",
    Severity.NOTE: "cyan",
    Severity.WARNING: "yellow",
    Severity.PROBLEM: "red",
}


def literal(text: str) -> str:
    """`text` as rich prints it literally: no markup, control characters escaped."""
    return escape(one_line(text))


def finding_markup(finding: Finding) -> str:
    colour = _COLOURS[finding.severity]
    return f"[{colour}]{finding.severity.value}[/{colour}]: {escape(finding.text)}"


def print_lines(lines: Iterable[str]) -> None:
    """Plain text lines, printed literally (no markup, no highlighting)."""
    for line in lines:
        console().print(literal(line))


def print_findings(findings: Iterable[Finding], *, summary: str, ok: bool) -> None:
    for finding in findings:
        console().print(finding_markup(finding))
    verdict = "[green]ok[/green]" if ok else "[red]problems found[/red]"
    console().print(f"{verdict}: {literal(summary)}")


def print_json(
    findings: Iterable[Finding], *, summary: str, ok: bool, extra: Mapping[str, Any] | None = None
) -> None:
    document: dict[str, Any] = {
        "ok": ok,
        "summary": summary,
        **(extra or {}),
        "findings": [finding.to_json() for finding in findings],
    }
    print(json.dumps(document, indent=2))  # plain print: rich would re-wrap long strings
