"""The one exception type the CLI turns into exit code 2.

Every module that reads user input (config files, plan JSON, status JSON)
raises `InputError` with one line per problem, so the user sees every mistake
at once and never a traceback.
"""

from __future__ import annotations

import re

# Control characters and the separators terminals and YAML treat as line breaks.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


class InputError(Exception):
    """Bad input: names where (file), what (field) and what is allowed."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__("\n".join(self.lines()))

    def lines(self) -> list[str]:
        """One line per problem, whatever the input held: control characters are escaped."""
        return [one_line(f"{self.source}: {problem}") for problem in self.problems]


def one_line(text: str) -> str:
    """`text` with control characters shown as escapes (`\\n`), so it prints as one line."""
    return _CONTROL.sub(lambda match: match.group().encode("unicode_escape").decode(), text)
