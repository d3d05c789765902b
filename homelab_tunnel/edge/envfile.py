"""The edge's KEY=value files (edge.env, channel.env, backup.env), read one way everywhere.

They are written by homelab-tunnel with values that need no quoting: what
systemd's EnvironmentFile= reads, everything after the first `=` is the value,
a trailing `=` included; `#` starts a comment only at the start of a line.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def parse(text: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", ";")):
            continue
        name, equals, value = stripped.partition("=")
        if not equals or not _NAME.fullmatch(name.strip()):
            raise ValueError(f"line {number}: not KEY=value")
        values[name.strip()] = value.strip()
    return values


def read_env_file(path: Path) -> dict[str, str]:
    return parse(path.read_text(encoding="utf-8"))


def shell_exports(values: dict[str, str]) -> str:
    """`export KEY='value'` lines a POSIX shell can eval, every value single-quoted."""
    return "".join(
        f"export {name}='{value.replace(chr(39), chr(39) + chr(92) + chr(39) + chr(39))}'\n"
        for name, value in values.items()
    )


def main(argv: list[str]) -> int:
    """`python3 -m homelab_tunnel.edge.envfile export FILE`: the file as shell exports."""
    if len(argv) != 2 or argv[0] != "export":
        print("usage: python3 -m homelab_tunnel.edge.envfile export FILE", file=sys.stderr)
        return 2
    try:
        print(shell_exports(read_env_file(Path(argv[1]))), end="")
    except (OSError, ValueError) as exc:
        print(f"envfile: {argv[1]}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
