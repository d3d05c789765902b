"""The real Terraform and provider (or one line saying why not); each shape synthesized once."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.fake_digitalocean import FakeDigitalOcean
from support.shapes import Shape, Synth
from support.terraform import OfflineTerraform, Unavailable, offline_terraform


@pytest.fixture(scope="session")
def terraform(tmp_path_factory: pytest.TempPathFactory) -> OfflineTerraform:
    try:
        return offline_terraform(tmp_path_factory.mktemp("terraform"))
    except Unavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    """Synthesis in this process, once per shape: jsii starts Node.js only once per session."""
    from homelab_tunnel.infra.synth import synthesize

    root = tmp_path_factory.mktemp("shapes")
    done: dict[str, dict[str, Any]] = {}

    def synth(shape: Shape) -> dict[str, Any]:
        if shape.name not in done:
            folder = root / shape.name
            path = synthesize(
                shape.config(), folder / "cdktf.out", config_path=folder / "edge.toml"
            )
            done[shape.name] = json.loads(path.read_text())
        return done[shape.name]

    return synth


@pytest.fixture(scope="module")
def fake_api(certificate: tuple[Path, Path]) -> Iterator[FakeDigitalOcean]:
    """A fake account of this module's own: the example's zone and key exist in it."""
    cert, key = certificate
    with FakeDigitalOcean(cert, key) as api:
        yield api
