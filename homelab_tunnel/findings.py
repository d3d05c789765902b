"""One shape for everything the tool reports: severity, subject, message.

`check`'s version gate, preflight, doctor, the edge's health agent and
plan-summary all speak in findings, so the terminal and JSON renderers are
written once and a problem reads the same wherever it comes from. Standard
library only: the edge's health agent ships with it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

# Control characters and the separators terminals and YAML treat as line breaks.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def one_line(text: str) -> str:
    """`text` with control characters shown as escapes (`\\x1b`, `\\n`).

    Names in reports come from peers and servers: an escape sequence in a host
    name must not move the cursor or retitle the operator's terminal, nor a
    newline forge a report line.
    """
    return _CONTROL.sub(lambda match: match.group().encode("unicode_escape").decode(), text)


class Severity(StrEnum):
    OK = "ok"
    NOTE = "note"
    WARNING = "warning"
    PROBLEM = "problem"


@dataclass(frozen=True)
class Finding:
    severity: Severity
    subject: str
    message: str

    @property
    def text(self) -> str:
        """`subject: message` (or the message alone) on one line, control characters escaped."""
        return one_line(f"{self.subject}: {self.message}" if self.subject else self.message)

    def line(self) -> str:
        """`problem: subject: message`, the form of every report line."""
        return f"{self.severity.value}: {self.text}"

    def to_json(self) -> dict[str, str]:
        return {"severity": self.severity.value, "subject": self.subject, "message": self.message}


def ok(subject: str, message: str) -> Finding:
    return Finding(Severity.OK, subject, message)


def note(subject: str, message: str) -> Finding:
    return Finding(Severity.NOTE, subject, message)


def warning(subject: str, message: str) -> Finding:
    return Finding(Severity.WARNING, subject, message)


def problem(subject: str, message: str) -> Finding:
    return Finding(Severity.PROBLEM, subject, message)


def problems(findings: Iterable[Finding]) -> list[Finding]:
    return [finding for finding in findings if finding.severity is Severity.PROBLEM]


def count_line(findings: Iterable[Finding]) -> str:
    """`2 problem(s), 1 warning(s)`: the tail of every summary line."""
    listed = list(findings)
    bad = sum(f.severity is Severity.PROBLEM for f in listed)
    warned = sum(f.severity is Severity.WARNING for f in listed)
    return f"{bad} problem(s), {warned} warning(s)"
