"""The example config's day-to-day changes reach the config object, never the droplet.

What a plan will do follows from what changes in the synthesized
configuration: Terraform replaces a droplet only when an attribute it was
given changes (user_data above all), and `depends_on` only orders the apply.
So, synthesized side by side with the example as shipped, a site added,
removed, moved to another port, upstream or scheme must change nothing of
the droplet but its `depends_on` (the records of the names), and the
webhook must not reach it at all. test_terraform_changes.py plans the same
changes with the real provider where it can be built.
"""

from __future__ import annotations

from typing import Any

import pytest
from support.config import example_raw
from support.shapes import BY_NAME, Shape, Synth

EXAMPLE = BY_NAME["example"]
SITES = example_raw()["sites"]
WIKI = {"domain": "wiki.example.com", "upstream": "homelab", "port": 3000}
CONFIG_OBJECT = "digitalocean_spaces_bucket_object.config"
DROPLET = "digitalocean_droplet.edge"

# change -> the resources whose configuration may differ from the example's
CHANGES: dict[str, tuple[list[dict[str, Any]], set[str]]] = {
    "site-added": (
        [*SITES, WIKI],
        {CONFIG_OBJECT, DROPLET, "digitalocean_record.a_wiki", "digitalocean_record.caa_wiki"},
    ),
    "site-removed": (
        SITES[:1],
        {CONFIG_OBJECT, DROPLET, "digitalocean_record.a_photos", "digitalocean_record.caa_photos"},
    ),
    "port-changed": ([{**SITES[0], "port": 8081}, *SITES[1:]], {CONFIG_OBJECT}),
    "upstream-changed": ([{**SITES[0], "upstream": "nas"}, *SITES[1:]], {CONFIG_OBJECT}),
    "scheme-changed": ([{**SITES[0], "scheme": "https"}, *SITES[1:]], {CONFIG_OBJECT}),
}


def _resources(stack: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        f"{kind}.{name}": body
        for kind, items in stack["resource"].items()
        for name, body in items.items()
    }


def _changed(name: str, synthesized: Synth) -> tuple[dict[str, Any], dict[str, Any], set[str]]:
    sites, _ = CHANGES[name]
    before = _resources(synthesized(EXAMPLE))
    after = _resources(synthesized(Shape(f"example-{name}", {**EXAMPLE.changes, "sites": sites})))
    differ = {a for a in before.keys() | after.keys() if before.get(a) != after.get(a)}
    return before, after, differ


@pytest.mark.parametrize("name", CHANGES)
def test_a_day_to_day_change_touches_the_config_object_and_dns_only(
    name: str, synthesized: Synth
) -> None:
    before, after, differ = _changed(name, synthesized)
    assert differ <= CHANGES[name][1]
    assert before[CONFIG_OBJECT]["content"] != after[CONFIG_OBJECT]["content"]


@pytest.mark.parametrize("name", CHANGES)
def test_a_day_to_day_change_leaves_the_droplet_as_it_is(name: str, synthesized: Synth) -> None:
    before, after, _ = _changed(name, synthesized)
    droplet = {key: value for key, value in after[DROPLET].items() if key != "depends_on"}
    assert droplet == {key: value for key, value in before[DROPLET].items() if key != "depends_on"}


def test_a_new_user_data_is_caught_by_the_same_comparison(synthesized: Synth) -> None:
    """The negative twin: a change that does reach user_data (Headscale's version) differs."""
    before = _resources(synthesized(EXAMPLE))
    newer = Shape("example-headscale", {**EXAMPLE.changes, "headscale": {"version": "0.28.0"}})
    after = _resources(synthesized(newer))
    assert before[DROPLET]["user_data"] != after[DROPLET]["user_data"]


def test_the_webhook_reaches_the_config_objects_metadata_only(synthesized: Synth) -> None:
    resources = _resources(synthesized(EXAMPLE))
    using = {
        address for address, body in resources.items() if "var.health_webhook_url" in str(body)
    }
    assert using == {CONFIG_OBJECT}
    assert "var.health_webhook_url" in resources[CONFIG_OBJECT]["metadata"]["webhook"]
    assert "var.health_webhook_url" not in resources[CONFIG_OBJECT]["content"]
