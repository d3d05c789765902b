"""plan-summary on forwarded ports: a new or widened port is exposure, in the firewall and the
config object alike; a port taken away or narrowed is not."""

from __future__ import annotations

from typing import Any

import pytest
from support.config import config_with
from support.plans import change, plan, summary_of

from homelab_tunnel.payload import edge_config_object
from homelab_tunnel.plan.model import Action, Danger

FIREWALL = "digitalocean_firewall.edge"
CONFIG = "digitalocean_spaces_bucket_object.config"
WEB = [("tcp", "80"), ("tcp", "443")]
GAME = {"protocol": "udp", "port": 27015, "upstream": "gtr6"}


def _firewall(rules: list[tuple[str, str]]) -> dict[str, Any]:
    return {
        "droplet_ids": [1],
        "inbound_rule": [
            {"protocol": protocol, "port_range": ports, "source_addresses": ["0.0.0.0/0"]}
            for protocol, ports in rules
        ],
    }


def _firewall_verdict(before: list[tuple[str, str]], after: list[tuple[str, str]]) -> Any:
    (only,) = summary_of(
        plan(change(FIREWALL, ["update"], before=_firewall(before), after=_firewall(after)))
    ).changes
    return only


@pytest.mark.parametrize(
    ("before", "after", "says"),
    [
        (WEB, [*WEB, ("udp", "27015")], "UDP 27015 newly open to 0.0.0.0/0"),
        (WEB, [*WEB, ("udp", "27015-27020")], "UDP 27015-27020 newly open to 0.0.0.0/0"),
        (
            [*WEB, ("udp", "27015-27020")],
            [*WEB, ("udp", "27015-27030")],
            "UDP 27015-27030 newly open to 0.0.0.0/0",
        ),
        # The same port over the other protocol is another door.
        ([*WEB, ("tcp", "27015")], [*WEB, ("tcp", "27015"), ("udp", "27015")], "UDP 27015 newly"),
    ],
)
def test_a_new_or_widened_port_in_the_firewall_is_exposure(
    before: list[tuple[str, str]], after: list[tuple[str, str]], says: str
) -> None:
    verdict = _firewall_verdict(before, after)
    assert verdict.danger is Danger.EXPOSURE
    assert says in verdict.consequence


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ([*WEB, ("udp", "27015-27030")], [*WEB, ("udp", "27015-27020")]),  # narrowed
        ([*WEB, ("udp", "27015-27030")], [*WEB, ("udp", "27016")]),  # inside the old range
        ([*WEB, ("udp", "27015")], WEB),  # removed
    ],
)
def test_negative_twin_a_narrowed_or_removed_port_exposes_nothing(
    before: list[tuple[str, str]], after: list[tuple[str, str]]
) -> None:
    assert _firewall_verdict(before, after).danger is Danger.SAFE


def _object(**changes: Any) -> dict[str, Any]:
    body = edge_config_object(config_with(**changes)).body
    return {"key": "homelab-edge/edge-config.json", "content": body, "metadata": {"mac": "x"}}


def _config_change(before: dict[str, Any], after: dict[str, Any]) -> Any:
    (only,) = summary_of(plan(change(CONFIG, ["update"], before=before, after=after))).changes
    return only


def test_a_port_added_to_the_config_object_is_exposure_and_named() -> None:
    verdict = _config_change(_object(), _object(ports=[GAME]))
    assert (verdict.action, verdict.danger) == (Action.UPDATE, Danger.EXPOSURE)
    assert "forwards udp 27015 to gtr6:27015" in verdict.consequence
    assert "applied by the running edge with no downtime" in verdict.consequence


def test_a_port_sent_to_another_machine_or_port_is_exposure() -> None:
    moved = {**GAME, "upstream": "nas", "upstream_port": 27016}
    verdict = _config_change(_object(ports=[GAME]), _object(ports=[moved]))
    assert verdict.danger is Danger.EXPOSURE
    assert "udp 27015 now goes to nas:27016 (was gtr6:27015)" in verdict.consequence


def test_negative_twin_a_port_removed_is_in_place_and_named() -> None:
    verdict = _config_change(_object(ports=[GAME]), _object())
    assert verdict.danger is Danger.IN_PLACE
    assert "stops forwarding udp 27015" in verdict.consequence
