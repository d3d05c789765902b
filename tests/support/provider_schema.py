"""The DigitalOcean provider 2.71.0 schema (`terraform providers schema -json`) as a checker.

Fast and offline: names the exact attribute a synthesized resource gets
wrong. The real provider (tests/infra/test_terraform_provider.py) catches what
a schema cannot.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cache
from typing import Any

from support.config import DATA

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
