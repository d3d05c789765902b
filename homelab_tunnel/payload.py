"""The edge's fixed files, read once from package data, and the user_data that carries them.

render/ stays pure by taking these files as input; this is the one place that
reads them, through importlib.resources, so an installed wheel works exactly
like a checkout.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from functools import cache
from importlib.resources import files
from importlib.resources.abc import Traversable

from homelab_tunnel.config import TunnelConfig
from homelab_tunnel.errors import InputError
from homelab_tunnel.render.backup import ACCESS_KEY_PLACEHOLDER, SECRET_KEY_PLACEHOLDER
from homelab_tunnel.render.edge_env import WEBHOOK_URL_MAX_LENGTH, WEBHOOK_URL_PLACEHOLDER
from homelab_tunnel.render.user_data import LIB, UNITS, EdgeFile, render_user_data

# DigitalOcean refuses a droplet whose user_data is larger than 64 KiB, and
# only at apply time, after the reserved IP, the records and the volume exist.
USER_DATA_LIMIT = 64 * 1024

# (file in homelab_tunnel/edge/files, path on the edge, mode)
FIXED_FILES: tuple[tuple[str, str, int], ...] = (
    ("bootstrap.sh", f"{LIB}/bootstrap.sh", 0o755),
    ("join-edge.sh", f"{LIB}/join-edge.sh", 0o755),
    ("mint-preauth-key.sh", f"{LIB}/mint-preauth-key.sh", 0o755),
    ("reserved-ip-egress.sh", f"{LIB}/reserved-ip-egress.sh", 0o755),
    ("restore-state.sh", f"{LIB}/restore-state.sh", 0o755),
    ("backup-keys.sh", f"{LIB}/backup-keys.sh", 0o755),
    ("homelab-tunnel-bootstrap.service", f"{UNITS}/homelab-tunnel-bootstrap.service", 0o644),
    ("homelab-tunnel-egress.service", f"{UNITS}/homelab-tunnel-egress.service", 0o644),
    ("homelab-tunnel-health.service", f"{UNITS}/homelab-tunnel-health.service", 0o644),
    ("homelab-tunnel-health.timer", f"{UNITS}/homelab-tunnel-health.timer", 0o644),
    ("homelab-tunnel-litestream.service", f"{UNITS}/homelab-tunnel-litestream.service", 0o644),
    *(
        (f"homelab-tunnel-backup-keys.{kind}", f"{UNITS}/homelab-tunnel-backup-keys.{kind}", 0o644)
        for kind in ("service", "path", "timer")
    ),
    ("state-volume.conf", f"{UNITS}/headscale.service.d/10-state-volume.conf", 0o644),
    ("state-volume.conf", f"{UNITS}/caddy.service.d/10-state-volume.conf", 0o644),
    ("state-volume.conf", f"{UNITS}/tailscaled.service.d/10-state-volume.conf", 0o644),
    (
        "tailscaled-after-headscale.conf",
        f"{UNITS}/tailscaled.service.d/20-after-headscale.conf",
        0o644,
    ),
    ("unattended-upgrades.conf", "/etc/apt/apt.conf.d/52homelab-tunnel-upgrades", 0o644),
)
# The health agent's modules: the edge package and the one shared module it uses.
SHARED_MODULES = ("__init__.py", "findings.py")


def _package() -> Traversable:
    return files("homelab_tunnel")


@cache
def fixed_files() -> tuple[EdgeFile, ...]:
    """The project's own files for the edge, the same for every config."""
    package = _package()
    edge_files = package / "edge" / "files"
    found = [
        EdgeFile(target, _compact(target, (edge_files / name).read_text(encoding="utf-8")), mode)
        for name, target, mode in FIXED_FILES
    ]
    found += [
        EdgeFile(
            f"{LIB}/homelab_tunnel/{name}",
            compact_python((package / name).read_text(encoding="utf-8")),
        )
        for name in SHARED_MODULES
    ]
    modules = sorted(
        entry.name for entry in (package / "edge").iterdir() if entry.name.endswith(".py")
    )
    found += [
        EdgeFile(
            f"{LIB}/homelab_tunnel/edge/{name}",
            compact_python((package / "edge" / name).read_text(encoding="utf-8")),
        )
        for name in modules
    ]
    return tuple(found)


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


def _compact(target: str, text: str) -> str:
    """Scripts and systemd units without comments; other files (apt's config) as they are."""
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


def user_data(config: TunnelConfig) -> str:
    """The droplet's user_data for `config`, with the fixed files bundled."""
    return render_user_data(config, fixed_files())


# Spaces access key ids are 20 characters and secrets 43; counted generously.
SPACES_KEY_MAX_LENGTH = 64


def user_data_size(config: TunnelConfig) -> int:
    """The size in bytes of the user_data the droplet will get, at most.

    Terraform replaces the webhook placeholder at plan time with the URL from
    TF_VAR_health_webhook_url, of unknown length here; its validation allows at
    most WEBHOOK_URL_MAX_LENGTH characters (all ASCII), so the size counts that
    many and holds for any URL Terraform accepts.
    """
    text = user_data(config)
    longest = {
        WEBHOOK_URL_PLACEHOLDER: WEBHOOK_URL_MAX_LENGTH,
        ACCESS_KEY_PLACEHOLDER: SPACES_KEY_MAX_LENGTH,
        SECRET_KEY_PLACEHOLDER: SPACES_KEY_MAX_LENGTH,
    }
    return len(text.encode()) + sum(
        text.count(placeholder) * (length - len(placeholder.encode()))
        for placeholder, length in longest.items()
    )


def checked_user_data_size(config: TunnelConfig, source: str) -> int:
    """`user_data_size`, or `InputError` when DigitalOcean would refuse it."""
    size = user_data_size(config)
    if size > USER_DATA_LIMIT:
        raise InputError(
            source,
            [
                f"sites: the droplet's user_data would be {size} bytes with "
                f"{len(config.sites)} sites (counting a {WEBHOOK_URL_MAX_LENGTH}-character "
                f"webhook URL), over DigitalOcean's limit of {USER_DATA_LIMIT} bytes; "
                "serve fewer sites from this edge"
            ],
        )
    return size
