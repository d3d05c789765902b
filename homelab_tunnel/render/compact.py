"""Edge files as they ship: the same programs without their comments, to fit user_data.

The fixed files are documented for their readers in the repository; on the
droplet they only run, and DigitalOcean takes 64 KiB of user_data. Only whole
lines are dropped and Python comments cut off at the positions `tokenize` and
`ast` report, so the result is the same on every machine; tests check that
Python and bash read each shipped file as the same program as its source.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize

from homelab_tunnel.render.user_data import UNITS


def compact_python(source: str) -> str:
    """`source` without docstrings, comments and blank lines: the same program, fewer bytes.

    The edge modules are documented for their readers here; on the droplet they
    only run, and user_data has 64 KiB. Only whole lines are dropped and
    comments cut off, at positions `tokenize` and `ast` report, so the result
    is the same on every machine; text inside string literals is never touched.
    """
    lines = source.splitlines(keepends=True)
    keep = [True] * (len(lines) + 1)
    code = [False] * (len(lines) + 1)
    cut: dict[int, int] = {}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            cut[token.start[0]] = token.start[1]
        elif token.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.DEDENT, tokenize.ENDMARKER):
            for number in range(token.start[0], token.end[0] + 1):
                code[number] = True
    for node in ast.walk(ast.parse(source)):
        body = getattr(node, "body", None)
        # A function or class needs a statement left; a module may end up empty.
        least = 1 if isinstance(node, ast.Module) else 2
        if isinstance(body, list) and len(body) >= least and _is_docstring(body[0]):
            for number in range(body[0].lineno, (body[0].end_lineno or 0) + 1):
                keep[number] = False
    out = []
    for number, line in enumerate(lines, start=1):
        if not keep[number] or not code[number]:
            continue
        if number in cut:
            line = line[: cut[number]].rstrip() + "\n"
        out.append(line)
    return "".join(out)


# `<<EOF`, `<<-'EOF'`, `<< "EOF"`: the body up to the line EOF is text, kept as it is.
_HEREDOC = re.compile(r"<<-?\s*['\"]?([A-Za-z_][A-Za-z0-9_]*)")


def compact_shell(source: str) -> str:
    """A bash script without its comment lines and blank lines, heredoc bodies kept.

    Only whole lines go; a test checks that bash parses every shipped script
    to the same program as its source.
    """
    out: list[str] = []
    heredoc = None
    for number, line in enumerate(source.splitlines(keepends=True)):
        if heredoc is not None:
            out.append(line)
            heredoc = None if line.strip() == heredoc else heredoc
            continue
        match = _HEREDOC.search(line)
        heredoc = match.group(1) if match else None
        if number and (not line.strip() or line.lstrip().startswith("#")):
            continue
        out.append(line)
    return "".join(out)


def compact_for(target: str, text: str) -> str:
    """What ships to `target`: scripts and systemd units without comments; Python
    modules without docstrings and comments; other files (apt's config) as they are."""
    if target.endswith(".py"):
        return compact_python(text)
    if target.endswith(".sh"):
        return compact_shell(text)
    if target.startswith(f"{UNITS}/"):
        return "".join(line for line in text.splitlines(keepends=True) if line[:1] not in "#\n")
    return text


def _is_docstring(node: ast.stmt) -> bool:
    return (
        isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    )
