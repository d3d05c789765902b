"""Helpers shared by the tests: the example config and ways to vary it."""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path
from typing import Any

from homelab_tunnel.config import TunnelConfig, parse_config

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "homelab-tunnel.toml"
DATA = Path(__file__).resolve().parent / "data"


def example_raw() -> dict[str, Any]:
    with EXAMPLE.open("rb") as handle:
        return tomllib.load(handle)


def config_with(**changes: Any) -> TunnelConfig:
    """The example config with top-level keys replaced (dicts merged, None removes)."""
    raw = copy.deepcopy(example_raw())
    for key, value in changes.items():
        if value is None:
            raw.pop(key, None)
        elif isinstance(value, dict) and isinstance(raw.get(key), dict):
            raw[key].update(value)
        else:
            raw[key] = value
    return parse_config(raw, "test.toml")


def resources(document: dict[str, Any], kind: str) -> dict[str, Any]:
    """Resources of one type in a synthesized stack, by logical name."""
    return dict(document.get("resource", {}).get(kind, {}))
