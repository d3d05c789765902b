"""Every synthesized resource checked against the DigitalOcean provider's schema.

The provider's own `terraform providers schema -json` (v2.71.0, the version
cdktf-cdktf-provider-digitalocean 13.14.1 binds), kept as a fixture: fast,
needs no binary, and names the exact attribute. Where the provider binary is
built, the fixture is compared with it, and test_terraform_provider.py runs
the provider itself.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from support.provider_schema import (
    FIXTURE,
    built_provider_schema,
    differences,
    provider_schema,
    render,
    stack_problems,
)
from support.shapes import SHAPES, Shape, Synth
from support.terraform import PROVIDER, OfflineTerraform


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


@pytest.mark.parametrize("shape", SHAPES, ids=lambda shape: shape.name)
def test_every_shape_matches_the_provider_schema(shape: Shape, synthesized: Synth) -> None:
    assert stack_problems(synthesized(shape)) == []


def test_schema_check_refuses_a_number_as_a_string_that_terraform_would_convert() -> None:
    # Stricter than Terraform, which converts "5" to 5: the check errs on the safe side.
    volume = {"name": "edge-state", "region": "fra1", "size": "5"}
    assert stack_problems({"resource": {"digitalocean_volume": {"state": volume}}}) == [
        "digitalocean_volume.state.size: expected number, got '5'"
    ]


# ---------------------------------------------------------------------------
# The fixture is the built provider's schema, exactly
# ---------------------------------------------------------------------------


def test_fixture_is_the_built_providers_schema(terraform: OfflineTerraform, tmp_path: Path) -> None:
    built = built_provider_schema(terraform, tmp_path)
    fixture = {"format_version": "1.0", "provider_schemas": {PROVIDER: provider_schema()}}
    found = list(differences(fixture, built))
    assert found == [], (
        f"{FIXTURE.name} differs from the built provider ({len(found)} places, first: "
        f"{found[:3]}); regenerate it: PYTHONPATH=tests .venv/bin/python -m support.provider_schema"
    )


def test_fixture_file_is_written_as_the_regeneration_writes_it() -> None:
    # Regenerating an unchanged provider leaves the file byte for byte as it is.
    assert FIXTURE.read_text() == render(
        {"format_version": "1.0", "provider_schemas": {PROVIDER: provider_schema()}}
    )


def test_schema_differences_name_the_attribute_that_drifted() -> None:
    built = {"provider_schemas": {PROVIDER: copy.deepcopy(provider_schema())}}
    droplet = built["provider_schemas"][PROVIDER]["resource_schemas"]["digitalocean_droplet"]
    droplet["block"]["attributes"]["size"]["optional"] = True
    del droplet["block"]["attributes"]["ipv6"]
    fixture = {"provider_schemas": {PROVIDER: provider_schema()}}
    attributes = (
        f"/provider_schemas/{PROVIDER}/resource_schemas/digitalocean_droplet/block/attributes"
    )
    assert list(differences(fixture, built)) == [
        f"{attributes}/ipv6: only in the fixture",
        f"{attributes}/size/optional: only in the built provider",
    ]
