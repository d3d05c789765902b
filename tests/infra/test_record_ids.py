"""DNS record logical ids: unique for every config, unchanged for every config that worked."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from support.config import EXAMPLE, config_with

from homelab_tunnel.config import TunnelConfig
from homelab_tunnel.infra.constructs.dns import record_labels


def _old_label(name: str) -> str:
    """The rule before the collision fix; configs that synthesized keep these ids."""
    return "apex" if name == "@" else name.replace(".", "_")


# (record names, expected labels): the collisions that crashed synth, and their neighbours.
COLLISIONS: list[tuple[list[str], dict[str, str]]] = [
    (["@", "apex"], {"@": "apex", "apex": "apex_"}),
    (["apex", "@"], {"@": "apex", "apex": "apex_"}),
    (["@", "apex", "apex.dev"], {"@": "apex", "apex": "apex_", "apex.dev": "apex_dev"}),
    (["apex"], {"apex": "apex"}),
    (["@"], {"@": "apex"}),
]


@pytest.mark.parametrize(("names", "expected"), COLLISIONS)
def test_labels_are_unique_and_keep_the_old_ids_where_they_worked(
    names: list[str], expected: dict[str, str]
) -> None:
    labels = record_labels(names)
    assert labels == expected
    assert len(set(labels.values())) == len(names)


NAMES = ["@", "apex", "apex.dev", "blog", "blog.dev", "dev", "a-b", "a.b", "headscale", "x1"]


def test_every_combination_of_names_gets_unique_labels() -> None:
    for size in range(1, 5):
        for names in itertools.combinations(NAMES, size):
            labels = record_labels(list(names))
            assert len(set(labels.values())) == len(names), names


def test_configs_without_the_collision_keep_every_id() -> None:
    for size in range(1, 4):
        for names in itertools.combinations(NAMES, size):
            if {"@", "apex"} <= set(names):
                continue
            assert record_labels(list(names)) == {n: _old_label(n) for n in names}


def test_negative_twin_the_old_rule_collides() -> None:
    assert len({_old_label(name) for name in ["@", "apex"]}) == 1


def _record_addresses(config: TunnelConfig, outdir: Path) -> set[str]:
    from homelab_tunnel.infra.synth import synthesize

    document: dict[str, Any] = json.loads(
        synthesize(config, outdir, config_path=EXAMPLE).read_text()
    )
    return {f"digitalocean_record.{name}" for name in document["resource"]["digitalocean_record"]}


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            {"sites": [
                {"domain": "example.com", "upstream": "homelab", "port": 80},
                {"domain": "apex.example.com", "upstream": "homelab", "port": 81},
            ]},
            {"a_apex", "caa_apex", "a_apex_", "caa_apex_", "a_headscale", "caa_headscale"},
        ),
        (
            {"headscale": {"domain": "apex.example.com"},
             "sites": [{"domain": "example.com", "upstream": "homelab", "port": 80}]},
            {"a_apex", "caa_apex", "a_apex_", "caa_apex_"},
        ),
        (
            {"headscale": {"domain": "example.com"}, "reserved_ipv6": True,
             "sites": [{"domain": "apex.example.com", "upstream": "homelab", "port": 80}]},
            {"a_apex", "aaaa_apex", "caa_apex", "a_apex_", "aaaa_apex_", "caa_apex_"},
        ),
    ],
    ids=["site-at-apex-and-apex-site", "headscale-at-apex-dot-zone", "headscale-at-apex-ipv6"],
)  # fmt: skip
def test_apex_and_a_record_named_apex_synthesize_together(
    tmp_path: Path, changes: dict[str, Any], expected: set[str]
) -> None:
    addresses = _record_addresses(config_with(**changes), tmp_path / "out")
    assert addresses == {f"digitalocean_record.{name}" for name in expected}
