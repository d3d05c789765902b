"""The one reader of the edge's KEY=value files (backup.env), read as systemd reads them.

  python3 -m homelab_tunnel.edge.envfile export FILE [NAME ...]

prints `export NAME='value'` lines for bash to eval (every key, or only the
NAMEs given). Python code calls `read()`. Before this module, bash split
lines with `IFS='=' read`, which drops a trailing `=` of a value (a base64
secret ends in one) where systemd keeps it.

The subset homelab-tunnel writes, read as systemd reads it
(src/basic/env-file.c, parse_env_file_internal): `#` and `;` start a comment
line, blank lines are skipped, the key is what comes before the first `=`
with surrounding blanks removed, the value is the rest with leading and
trailing blanks removed, blanks inside it kept. A value systemd would read
differently (one that starts with a quote, or holds a backslash, which
systemd unescapes) is refused rather than guessed at.
"""

from __future__ import annotations

import re
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
BLANKS = " \t"


class EnvFileError(Exception):
    """A line outside the subset, or a file that cannot be read: one line naming it."""


def parse(text: str, source: str = "env file") -> dict[str, str]:
    """KEY -> value for every assignment in `text`; the last one wins, as in systemd."""
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip(BLANKS)
        if not stripped or stripped[0] in "#;":
            continue
        key, equals, value = stripped.partition("=")
        key, value = key.rstrip(BLANKS), value.strip(BLANKS)
        where = f"{source}:{number}"
        if not equals or not NAME.fullmatch(key):
            raise EnvFileError(f"{where}: not a KEY=value line")
        if "\\" in value or value[:1] in ("'", '"'):
            raise EnvFileError(
                f"{where}: {key} holds a quote or a backslash, which systemd unescapes"
            )
        values[key] = value
    return values


def read(path: Path) -> dict[str, str]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise EnvFileError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    return parse(text, str(path))


def exports(values: dict[str, str], names: Sequence[str]) -> str:
    """`export NAME='value'` lines; every name asked for must be there."""
    missing = [name for name in names if name not in values]
    if missing:
        raise EnvFileError(f"not set: {', '.join(missing)}")
    chosen = names or list(values)
    return "".join(f"export {name}={shlex.quote(values[name])}\n" for name in chosen)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 2 or args[0] != "export":
        print(
            "usage: python3 -m homelab_tunnel.edge.envfile export FILE [NAME ...]", file=sys.stderr
        )
        return 2
    try:
        print(exports(read(Path(args[1])), args[2:]), end="")
    except EnvFileError as exc:
        print(f"envfile: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
