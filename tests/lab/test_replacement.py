"""Scenario 7: the droplet is replaced; the state volume carries the tailnet and the certificates.

Everything on the edge stops, all but the volume's directories is wiped, and
a new droplet (new own and anchor addresses, same reserved IP) starts from the
same user_data. Nothing may need a person: no new key, no second edge node,
no new certificate.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from support.lab.addresses import REPLACEMENT_DROPLET
from support.lab.lab import Lab
from support.lab.shell import wait_for
from support.lab.shims import calls


def _nodes(lab: Lab) -> list[tuple[Any, ...]]:
    return sorted(
        (n["id"], n["name"], n["user"]["name"], n["node_key"], n["machine_key"], *n["ip_addresses"])
        for n in lab.edge.nodes()
    )


def _keys(lab: Lab) -> int:
    return len(json.loads(lab.edge.headscale("preauthkeys", "list", "-o", "json").stdout) or [])


@dataclass
class State:
    noise_key: str
    nodes: list[tuple[Any, ...]]
    preauth_keys: int
    ssh_calls: int
    home_key: str
    issued: int


def _state(lab: Lab) -> State:
    return State(
        noise_key=lab.edge.noise_key_sha256(),
        nodes=_nodes(lab),
        preauth_keys=_keys(lab),
        ssh_calls=len(calls(lab.directory / "logs")),
        home_key=lab.home.node.status()["Self"]["PublicKey"],
        issued=lab.pebble.issued(),
    )


@dataclass
class Observed:
    before: State
    after: State
    first_page: str  # the first page the new droplet serves for the blog
    home_backend: str
    home_ping: str
    home_derp_ipv4: str
    bootstrap_output: str
    caddy_log: str


@pytest.fixture(scope="module")
def observed(lab: Lab) -> Observed:
    before = _state(lab)
    caddy_logged = len(lab.edge.box.log("caddy"))
    lab.edge.replace(REPLACEMENT_DROPLET)
    first_page = lab.page_once_up("blog.lab.example")
    wait_for(
        "the homelab sees the new edge",
        lambda: lab.home.node.peer(lab.config.name).get("Online"),
        60,
    )
    lab.edge.node.wait_direct("homelab", timeout=60)
    derp_map = json.loads(lab.home.node.cli("debug", "derp-map").stdout)
    return Observed(
        before=before,
        after=_state(lab),
        first_page=first_page,
        home_backend=lab.home.node.status()["BackendState"],
        home_ping=lab.home.node.ping(lab.config.name),
        home_derp_ipv4=derp_map["Regions"]["999"]["Nodes"][0]["IPv4"],
        bootstrap_output=lab.edge.bootstrap.output,
        caddy_log=lab.edge.box.log("caddy")[caddy_logged:],
    )


def test_headscale_keeps_its_noise_key(observed: Observed) -> None:
    assert observed.after.noise_key == observed.before.noise_key


def test_the_node_list_is_unchanged_and_the_edge_not_registered_twice(observed: Observed) -> None:
    assert observed.after.nodes == observed.before.nodes
    assert observed.after.preauth_keys == observed.before.preauth_keys  # join-edge.sh minted none
    # bootstrap.sh printed its step lines and its own probes' curl errors (no IPv6 in the
    # metadata, /health before Headscale answers), nothing else: join-edge.sh had nothing to do.
    lines = observed.bootstrap_output.splitlines()
    assert [line for line in lines if not line.startswith(("homelab-tunnel: ", "curl: "))] == []
    assert any(line.startswith("homelab-tunnel: headscale: headscale running") for line in lines)


def test_the_homelab_reconnects_with_no_new_key(observed: Observed, lab: Lab) -> None:
    assert observed.after.home_key == observed.before.home_key
    assert observed.after.ssh_calls == observed.before.ssh_calls  # nobody minted a key for it
    assert observed.home_backend == "Running"
    new = REPLACEMENT_DROPLET.own
    assert f"pong from {lab.config.name} (100.64.0.1) via {new}:41641" in observed.home_ping
    assert observed.home_derp_ipv4 == new  # DERP follows the new droplet's own address


def test_caddy_reuses_its_certificates(observed: Observed) -> None:
    assert observed.after.issued == observed.before.issued
    assert "obtaining certificate" not in observed.caddy_log
    assert "certificate obtained successfully" not in observed.caddy_log


def test_the_sites_come_back(observed: Observed) -> None:
    assert observed.first_page.startswith("blog app on homelab")
