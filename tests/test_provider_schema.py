"""Every synthesized resource checked against the real DigitalOcean provider schema.

`terraform validate` needs the provider binary, which cannot be downloaded
here; the provider's own `terraform providers schema -json` (v2.71.0, the
version cdktf-cdktf-provider-digitalocean 13.14.1 binds) is the next best thing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cache
from typing import Any

import pytest
from helpers import DATA

PROVIDER = "registry.terraform.io/digitalocean/digitalocean"
META_ARGUMENTS = {"//", "depends_on", "lifecycle", "provider", "count", "for_each"}


@cache
def provider_schema() -> dict[str, Any]:
    document = json.loads((DATA / "do-provider-2.71.0-schema.json").read_text())
    return dict(document["provider_schemas"][PROVIDER])


def _is_reference(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("${") and value.endswith("}")


def _type_problems(value: Any, cty: Any, where: str) -> Iterator[str]:
    if _is_reference(value):
        return
    if cty == "string":
        if not isinstance(value, str):
            yield f"{where}: expected string, got {value!r}"
    elif cty == "number":
        if isinstance(value, bool) or not isinstance(value, int | float):
            yield f"{where}: expected number, got {value!r}"
    elif cty == "bool":
        if not isinstance(value, bool):
            yield f"{where}: expected bool, got {value!r}"
    elif isinstance(cty, list) and cty[0] in ("list", "set"):
        if not isinstance(value, list):
            yield f"{where}: expected {cty[0]}, got {value!r}"
            return
        for index, item in enumerate(value):
            yield from _type_problems(item, cty[1], f"{where}[{index}]")
    elif isinstance(cty, list) and cty[0] == "map" and not isinstance(value, dict):
        yield f"{where}: expected map, got {value!r}"


def block_problems(body: dict[str, Any], block: dict[str, Any], where: str) -> Iterator[str]:
    """Unknown keys, missing required attributes, wrong types, in one block."""
    attributes = block.get("attributes", {})
    nested = block.get("block_types", {})
    for key, value in body.items():
        if key in META_ARGUMENTS:
            continue
        if key in attributes:
            attribute = attributes[key]
            if attribute.get("computed") and not (
                attribute.get("optional") or attribute.get("required")
            ):
                yield f"{where}.{key}: read-only (computed) attribute cannot be set"
            yield from _type_problems(value, attribute["type"], f"{where}.{key}")
        elif key in nested:
            spec = nested[key]
            items = value if isinstance(value, list) else [value]
            if spec.get("max_items") is not None and len(items) > spec["max_items"]:
                yield f"{where}.{key}: at most {spec['max_items']} block(s)"
            for index, item in enumerate(items):
                if not isinstance(item, dict):
                    yield f"{where}.{key}[{index}]: expected a block, got {item!r}"
                    continue
                yield from block_problems(item, spec["block"], f"{where}.{key}[{index}]")
        else:
            yield f"{where}.{key}: not an attribute or block of this type"
    for key, attribute in attributes.items():
        if attribute.get("required") and key not in body:
            yield f"{where}.{key}: required attribute missing"
    for key, spec in nested.items():
        if spec.get("min_items") and key not in body:
            yield f"{where}.{key}: required block missing"


def stack_problems(document: dict[str, Any]) -> list[str]:
    schema = provider_schema()
    problems: list[str] = []
    for section, schemas in (("resource", "resource_schemas"), ("data", "data_source_schemas")):
        for kind, items in document.get(section, {}).items():
            if kind not in schema[schemas]:
                problems.append(f"{section}.{kind}: no such type in the provider")
                continue
            for name, body in items.items():
                problems.extend(
                    block_problems(body, schema[schemas][kind]["block"], f"{kind}.{name}")
                )
    return problems


@pytest.mark.parametrize("variant", ["stack", "full_stack"])
def test_synthesized_stack_matches_the_provider_schema(
    variant: str, request: pytest.FixtureRequest
) -> None:
    document = request.getfixturevalue(variant)
    assert stack_problems(document) == []


def test_checker_reports_unknown_missing_and_mistyped_attributes() -> None:
    document = {
        "resource": {
            "digitalocean_droplet": {
                "edge": {"name": "x", "image": "ubuntu-24-04-x64", "sise": "s-1vcpu-1gb"}
            },
            "digitalocean_volume": {
                "state": {"name": "s", "region": "fra1", "size": "five", "urn": "do:volume:x"}
            },
            "digitalocean_droplett": {"typo": {}},
        }
    }
    assert sorted(stack_problems(document)) == sorted(
        [
            "digitalocean_droplet.edge.sise: not an attribute or block of this type",
            "digitalocean_droplet.edge.size: required attribute missing",
            "digitalocean_volume.state.size: expected number, got 'five'",
            "digitalocean_volume.state.urn: read-only (computed) attribute cannot be set",
            "resource.digitalocean_droplett: no such type in the provider",
        ]
    )


def test_checker_reports_bad_nested_blocks() -> None:
    document = {
        "resource": {
            "digitalocean_firewall": {
                "edge": {"name": "fw", "inbound_rule": [{"port_range": "80", "sources": ["x"]}]}
            },
            "digitalocean_monitor_alert": {
                "cpu": {
                    "compare": "GreaterThan",
                    "description": "d",
                    "type": "v1/insights/droplet/cpu",
                    "value": 1,
                    "window": "5m",
                }
            },
        }
    }
    assert sorted(stack_problems(document)) == sorted(
        [
            "digitalocean_firewall.edge.inbound_rule[0].sources: "
            "not an attribute or block of this type",
            "digitalocean_firewall.edge.inbound_rule[0].protocol: required attribute missing",
            "digitalocean_monitor_alert.cpu.alerts: required block missing",
        ]
    )
