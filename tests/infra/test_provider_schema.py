"""Every synthesized resource checked against the real DigitalOcean provider schema.

`terraform validate` needs the provider binary, which cannot be downloaded
here; the provider's own `terraform providers schema -json` (v2.71.0, the
version cdktf-cdktf-provider-digitalocean 13.14.1 binds) is the next best thing.
"""

from __future__ import annotations

import pytest
from support.provider_schema import stack_problems


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
