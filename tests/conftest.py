"""Shared fixtures: the example config, one synthesis per variant per session, TLS for fakes,
and a loopback S3 for the edge's backups."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.config import EXAMPLE, config_with, example_raw
from support.fake_digitalocean import make_certificate
from support.moto_s3 import S3Server, moto_s3
from support.shapes import PORTS

from homelab_tunnel.config import TunnelConfig, parse_config


def _synth(config: TunnelConfig, outdir: Path) -> dict[str, Any]:
    from homelab_tunnel.infra.synth import synthesize

    path = synthesize(config, outdir, config_path=EXAMPLE)
    return json.loads(path.read_text())


@pytest.fixture(scope="session")
def example_config() -> TunnelConfig:
    return parse_config(example_raw(), str(EXAMPLE))


@pytest.fixture(scope="session")
def stack(example_config: TunnelConfig, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The example config, synthesized once for the whole session."""
    return _synth(example_config, tmp_path_factory.mktemp("synth") / "cdktf.out")


@pytest.fixture(scope="session")
def full_stack(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Optional parts switched: SSH allowlist, IPv6, created zone, Spaces state, no alerts,
    forwarded ports."""
    config = config_with(
        alert_email=None,
        ssh_allowed_cidrs=["203.0.113.7/32", "2001:db8::/64"],
        reserved_ipv6=True,
        dns={"create_zone": True},
        backend={
            "type": "spaces",
            "bucket": "homelab-state",
            "key": "edge/terraform.tfstate",
            "region": "fra1",
        },
        ssh_keys=["3b:16:bf:e4:8b:00:8b:b8:59:8c:a9:d3:f0:19:45:fa"],
        ports=PORTS,
    )
    return _synth(config, tmp_path_factory.mktemp("synth-full") / "cdktf.out")


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A throwaway certificate for 127.0.0.1, for the fake DigitalOcean API."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed; it makes the test server's TLS certificate")
    return make_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """moto's S3 on 127.0.0.1, signatures checked; each test takes a bucket of its own."""
    with moto_s3() as server:
        yield server
