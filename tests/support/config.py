"""Helpers shared by the tests: the example config and ways to vary it."""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path
from typing import Any

import tomli_w

from homelab_tunnel.config import TunnelConfig, parse_config

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "homelab-tunnel.toml"
DATA = ROOT / "tests" / "data"


def example_raw() -> dict[str, Any]:
    with EXAMPLE.open("rb") as handle:
        return tomllib.load(handle)


def _merge(raw: dict[str, Any], changes: dict[str, Any]) -> None:
    for key, value in changes.items():
        if value is None:
            raw.pop(key, None)
        elif isinstance(value, dict) and isinstance(raw.get(key), dict):
            _merge(raw[key], value)
        else:
            raw[key] = value


def merged(raw: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """A copy of `raw` with keys replaced (dicts merged, None removes, at any depth)."""
    result = copy.deepcopy(raw)
    _merge(result, copy.deepcopy(changes))
    return result


def raw_with(**changes: Any) -> dict[str, Any]:
    """The example's TOML data with keys replaced (dicts merged, None removes, at any depth)."""
    return merged(example_raw(), changes)


def config_with(**changes: Any) -> TunnelConfig:
    """The example config, changed as `raw_with` does, validated."""
    return parse_config(raw_with(**changes), "test.toml")


def write_config(directory: Path, raw: dict[str, Any] | None = None, **changes: Any) -> Path:
    """`directory/edge.toml`: `raw` (default: the example) with `changes`, as TOML."""
    document = copy.deepcopy(raw) if raw is not None else example_raw()
    _merge(document, changes)
    path = directory / "edge.toml"
    path.write_bytes(tomli_w.dumps(document).encode())
    return path


def resources(document: dict[str, Any], kind: str) -> dict[str, Any]:
    """Resources of one type in a synthesized stack, by logical name."""
    return dict(document.get("resource", {}).get(kind, {}))
