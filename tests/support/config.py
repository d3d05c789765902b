"""Helpers shared by the tests: the example config and ways to vary it."""

from __future__ import annotations

import copy
import importlib.util
import sys
import tomllib
from pathlib import Path
from types import ModuleType
from typing import Any

import tomli_w

from homelab_tunnel.config import TunnelConfig, parse_config

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "homelab-tunnel.toml"
DATA = ROOT / "tests" / "data"


def tool(name: str) -> ModuleType:
    """tools/`name`.py, the script `make test` runs, as a module (loaded once)."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


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


# The most awkward values each field's shape accepts (tests/render and tests/infra
# read them back with the real tools of every target).
EDGY_ALERT_EMAIL = "ops.team+alerts-2_x@Mail.Example.com"
EDGY_ACME_EMAIL = "certs.team+le@example.com"
EDGY_DERP_URL = "https://Derp.example.com:8443/map/x_y~z?a=1&b=%20,c:d@e!f+g"
EDGY_KEY_NAME = "Jane's laptop (2024), v1.0: a+b@c"
EDGY_BASIC_USER = "bob.smith+home@example.com"
EDGY_HASH = "$2y$05$F9jhRHjogJ4ajuH6WVmqDONj6II2/ucPzhA01PSXDQ.ET2twjxwx."
EDGY_AUTH_PATH = "/api/verify?rd=https://login.example.com:8443/a_b~c%20&x=1,y:z@w!+"


def edgy_config() -> TunnelConfig:
    """Every field at the edge of what its shape allows."""
    return config_with(
        alert_email=EDGY_ALERT_EMAIL,
        tls={"email": EDGY_ACME_EMAIL},
        ssh_keys=[EDGY_KEY_NAME, "3B:16:BF:E4:8B:00:8B:B8:59:8C:A9:D3:F0:19:45:FA"],
        ssh_allowed_cidrs=["203.0.113.7", "2001:db8::/64"],
        headscale={"derp_urls": [EDGY_DERP_URL], "deb_sha256": "AB" * 32, "version": "v0.29.2"},
        backend={
            "type": "spaces",
            "bucket": "homelab-state",
            "key": "edge/sub_dir/terraform-1.2.tfstate",
            "region": "fra1",
        },
        sites=[
            {
                "domain": "example.com",
                "upstream": "nas-1",
                "port": 443,
                "scheme": "https",
                "hsts": True,
                "auth": {"basic": [{"user": EDGY_BASIC_USER, "password_hash": EDGY_HASH}]},
            },
            {
                "domain": "a-b.example.com",
                "upstream": "100.64.0.7",
                "port": 8080,
                "allow_cidrs": ["203.0.113.7", "2001:DB8::/64"],
                "crawlers": "block-ai",
            },
            {
                "domain": "x1.a-b.example.com",
                "upstream": "n0",
                "port": 65535,
                "auth": {
                    "forward": {
                        "upstream": "au-th",
                        "port": 1,
                        "path": EDGY_AUTH_PATH,
                        "copy_headers": ["Remote-User", "X-Auth-Request-Email"],
                    }
                },
            },
        ],
    )
