"""Scenario 5: UDP blocked between home and edge; traffic relays through the edge's own DERP.

One sequence, observed once: block UDP at the internet router, wait for the
path to leave the direct route, look at everything (sites, doctor, two runs
of the health agent), unblock, wait for the direct path, run the agent again.
"""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from support.lab.addresses import HOME_ROUTER_WAN
from support.lab.lab import Lab
from support.lab.probes import curl

from homelab_tunnel.render.headscale import DERP_REGION_ID


@dataclass
class Observed:
    during_switch: str  # "<HTTP status> <seconds>"
    relayed: dict[str, Any]
    seconds_to_relay: float
    derp_map: dict[str, Any]
    pages: dict[str, str]
    doctor: subprocess.CompletedProcess[str]
    health: list[subprocess.CompletedProcess[str]] = field(default_factory=list)
    posts: list[list[dict[str, Any]]] = field(default_factory=list)  # all posts, after each run
    direct_again: str = ""
    seconds_to_direct: float = 0.0


def _health(lab: Lab, observed: Observed) -> None:
    observed.health.append(lab.edge.run_unit("homelab-tunnel-health.service"))
    observed.posts.append(lab.edge.posts())


@pytest.fixture(scope="module")
def observed(lab: Lab) -> Observed:
    with lab.edge.timer_held():  # the agent runs when the scenario says, and only then
        return _observe(lab)


def _observe(lab: Lab) -> Observed:
    lab.edge.start_webhook()
    lab.edge.node.wait_direct("homelab")
    before = len(lab.edge.posts())
    edge = [lab.edge.droplet.own, lab.edge.droplet.anchor]
    with lab.internet.udp_blocked(HOME_ROUTER_WAN.address, edge):
        started = time.monotonic()
        # A reload empties Caddy's upstream connection pool: this request must dial
        # the homelab while both sides still trust the direct path they just lost.
        lab.edge.reload_caddy()
        during = curl(lab.visitor, "https://blog.lab.example/", "-o", "/dev/null",
                      "-w", "%{http_code} %{time_total}", roots=lab.roots).stdout  # fmt: skip
        # Relayed both ways: each side trusts its last direct pong for 6.5 s on its own.
        relayed = lab.edge.node.wait_relayed("homelab", timeout=30)
        lab.home.node.wait_relayed(lab.config.name, timeout=30)
        seen = Observed(
            during_switch=during,
            relayed=relayed,
            seconds_to_relay=time.monotonic() - started,
            derp_map=json.loads(lab.home.node.cli("debug", "derp-map").stdout),
            pages={site.domain: lab.page(site.domain) for site in lab.config.sites},
            doctor=lab.doctor(),
        )
        _health(lab, seen)
        _health(lab, seen)
    started = time.monotonic()
    seen.direct_again = lab.edge.node.wait_direct("homelab", timeout=60)
    seen.seconds_to_direct = time.monotonic() - started
    _health(lab, seen)
    seen.posts = [posts[before:] for posts in seen.posts]
    return seen


def test_a_request_while_the_path_moves_is_slow_not_failed(observed: Observed) -> None:
    status, seconds = observed.during_switch.split()
    assert status == "200", observed.during_switch  # Caddy kept retrying the dial
    assert float(seconds) > 2  # it did wait for the relay


def test_blocked_udp_moves_the_path_to_the_edges_own_relay(observed: Observed, lab: Lab) -> None:
    assert observed.relayed["CurAddr"] == ""
    assert observed.relayed["Relay"] == "headscale"
    # The only relay there is: the edge's embedded DERP, at the droplet's own address.
    regions = observed.derp_map["Regions"]
    assert list(regions) == [str(DERP_REGION_ID)]
    assert [node["IPv4"] for node in regions[str(DERP_REGION_ID)]["Nodes"]] == [
        lab.edge.droplet.own
    ]
    assert observed.seconds_to_relay < 15  # Tailscale trusts a silent UDP path for 6.5 s


def test_the_sites_still_load_over_the_relay(observed: Observed) -> None:
    for domain, page in observed.pages.items():
        assert page.startswith(f"{domain.split('.')[0]} app on homelab"), domain


def test_doctor_names_the_relay(observed: Observed) -> None:
    assert observed.doctor.returncode == 1, observed.doctor.stdout
    assert (
        "problem: site upstream homelab.tail.lab.example: via DERP region headscale, not direct"
        in observed.doctor.stdout
    )


def test_the_health_agent_posts_once_while_relayed(observed: Observed) -> None:
    first, second = observed.health[:2]
    assert (first.returncode, second.returncode) == (1, 1)
    assert "via DERP region headscale, not direct" in first.stdout
    assert len(observed.posts[0]) == 1
    assert observed.posts[0][0]["ok"] is False
    assert any("via DERP region headscale" in text for text in observed.posts[0][0]["problems"])
    assert "findings unchanged since the last notification, not sent" in second.stdout
    assert len(observed.posts[1]) == 1


def test_the_direct_path_and_the_all_clear_return_with_udp(observed: Observed) -> None:
    assert observed.direct_again.startswith(f"{HOME_ROUTER_WAN.address}:")
    recovered = observed.health[2]
    assert recovered.returncode == 0, recovered.stdout
    assert len(observed.posts[2]) == 2
    assert observed.posts[2][1]["ok"] is True
    assert observed.posts[2][1]["problems"] == []
    assert "all clear" in observed.posts[2][1]["text"]
