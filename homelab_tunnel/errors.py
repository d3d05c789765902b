"""The one exception type the CLI turns into exit code 2.

Every module that reads user input (config files, plan JSON, status JSON)
raises `InputError` with one line per problem, so the user sees every mistake
at once and never a traceback.
"""

from __future__ import annotations

from homelab_tunnel.findings import one_line


class InputError(Exception):
    """Bad input: names where (file), what (field) and what is allowed."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__("\n".join(self.lines()))

    def lines(self) -> list[str]:
        """One line per problem, whatever the input held: control characters are escaped."""
        return [one_line(f"{self.source}: {problem}") for problem in self.problems]
