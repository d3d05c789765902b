"""Examples are executable documentation: each one validates and synthesizes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.config import ROOT
from support.provider_schema import stack_problems

from homelab_tunnel.config import load_config
from homelab_tunnel.infra.synth import synthesize

EXAMPLES = sorted((ROOT / "examples").glob("*.toml"))


def test_there_are_examples() -> None:
    assert ROOT / "examples" / "homelab-tunnel.toml" in EXAMPLES


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_synthesizes_to_a_valid_stack(path: Path, tmp_path: Path) -> None:
    config = load_config(path)
    document = json.loads(synthesize(config, tmp_path / "out", config_path=path).read_text())
    assert document["resource"]["digitalocean_droplet"]["edge"]["name"] == config.name
    assert stack_problems(document) == []
