"""The Go-built programs of tools/binaries.toml, for tests: a path, or a one-line reason to skip."""

from __future__ import annotations

from pathlib import Path

import pytest

from support.config import tool

build_binaries = tool("build_binaries")


def binary(name: str, command: str | None = None) -> Path | None:
    """The built binary of entry `name` (its first command unless `command`), or None."""
    program = build_binaries.programs()[name]
    path = program.binaries[command or program.commands[0]]
    return path if path.is_file() else None


def why_missing(name: str) -> str:
    program = build_binaries.programs()[name]
    if program.failure.exists():
        return f"{name} could not be built: {program.failure.read_text().strip()}"
    return f"{name} is not built yet ({program.folder}); `make test` builds it"


def require(name: str, command: str | None = None) -> Path:
    """The binary, or skip the test saying why in one line."""
    path = binary(name, command)
    if path is None:
        pytest.skip(why_missing(name))
    return path
