"""The DigitalOcean provider 2.71.0 schema (`terraform providers schema -json`) as a checker.

Fast and offline: names the exact attribute a synthesized resource gets
wrong. The real provider (tests/infra/test_terraform_provider.py) catches what
a schema cannot. The fixture is the built provider's own output, and a test
fails the moment the two differ; to write it again from the provider that
tools/binaries.toml pins:

    PYTHONPATH=tests .venv/bin/python -m support.provider_schema
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

from support.config import DATA
from support.terraform import (
    PROVIDER,
    PROVIDER_VERSION,
    OfflineTerraform,
    Unavailable,
    offline_terraform,
)

FIXTURE = DATA / f"do-provider-{PROVIDER_VERSION}-schema.json"
META_ARGUMENTS = {"//", "depends_on", "lifecycle", "provider", "count", "for_each"}


@cache
def provider_schema() -> dict[str, Any]:
    document = json.loads(FIXTURE.read_text())
    return dict(document["provider_schemas"][PROVIDER])


def built_provider_schema(terraform: OfflineTerraform, workdir: Path) -> dict[str, Any]:
    """`terraform providers schema -json` of the built provider, in a configuration of its own."""
    namespace, kind = PROVIDER.split("/")[1:]
    required = {kind: {"source": f"{namespace}/{kind}", "version": PROVIDER_VERSION}}
    work = terraform.workdir(workdir, {"terraform": {"required_providers": required}})
    work.init()
    done = work.run("providers", "schema", "-json")
    if done.returncode != 0:
        raise AssertionError(f"terraform providers schema failed:\n{done.output}")
    document: dict[str, Any] = json.loads(done.stdout)
    return document


def differences(fixture: Any, built: Any, where: str = "") -> Iterator[str]:
    """Where the fixture and the built provider's schema disagree, as JSON paths."""
    if isinstance(fixture, dict) and isinstance(built, dict):
        for key in sorted(fixture.keys() | built.keys()):
            path = f"{where}/{key}"
            if key not in built:
                yield f"{path}: only in the fixture"
            elif key not in fixture:
                yield f"{path}: only in the built provider"
            else:
                yield from differences(fixture[key], built[key], path)
    elif fixture != built:
        yield f"{where or '/'}: fixture {fixture!r}, built provider {built!r}"


def render(document: dict[str, Any]) -> str:
    """The fixture's layout: one key per line, sorted, so a provider bump diffs readably."""
    return json.dumps(document, indent=1, sort_keys=True)


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


def main() -> int:
    """Write the fixture from the built provider."""
    with tempfile.TemporaryDirectory(prefix="provider-schema-") as scratch:
        try:
            terraform = offline_terraform(Path(scratch))
        except Unavailable as exc:
            print(f"cannot regenerate {FIXTURE.name}: {exc}", file=sys.stderr)
            return 1
        document = built_provider_schema(terraform, Path(scratch) / "work")
    FIXTURE.write_text(render(document))
    print(f"wrote {FIXTURE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
