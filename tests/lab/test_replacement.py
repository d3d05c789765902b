"""Scenario 7: the droplet is replaced; the state volume carries the tailnet and the certificates.

The droplet is destroyed (its volume detached and kept) and a new one (new
own and anchor addresses, machine-id, instance-id; same reserved IP) boots
from the same user_data on the volume. Nothing may need a person: no new key,
no second edge node, no new certificate, and the operator's ssh, holding the
host key it learned from the first droplet, reaches the new one unchanged.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from typing import Any

import pytest
from support.lab.lab import Lab
from support.lab.shell import wait_for


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
    host_key: str
    instance_id: str
    home_key: str
    issued: int


def _state(lab: Lab) -> State:
    return State(
        noise_key=lab.edge.noise_key_sha256(),
        nodes=_nodes(lab),
        preauth_keys=_keys(lab),
        host_key=lab.edge.host_key_fingerprint(),
        instance_id=lab.edge.droplet_box.instance_id,
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
    ssh_before: subprocess.CompletedProcess[str]
    ssh_after: subprocess.CompletedProcess[str]
    own_address: str


@pytest.fixture(scope="module")
def observed(lab: Lab) -> Observed:
    ssh_before = lab.ssh("hostname", check=False)  # the first droplet's key is known from now
    before = _state(lab)
    lab.replace_edge()
    ssh_after = lab.ssh("cat", "/var/lib/cloud/data/instance-id", check=False)
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
        caddy_log=lab.edge.box.log("caddy"),  # the new droplet's journal: its Caddy only
        ssh_before=ssh_before,
        ssh_after=ssh_after,
        own_address=lab.edge.droplet.own,
    )


def test_headscale_keeps_its_noise_key(observed: Observed) -> None:
    assert observed.after.noise_key == observed.before.noise_key


def test_the_node_list_is_unchanged_and_the_edge_not_registered_twice(observed: Observed) -> None:
    assert observed.after.nodes == observed.before.nodes
    assert observed.after.preauth_keys == observed.before.preauth_keys  # join-edge.sh minted none
    lines = observed.bootstrap_output.splitlines()
    assert any(line.startswith("homelab-tunnel: headscale: headscale running") for line in lines)
    assert not any("tailscale up" in line or "hskey-auth-" in line for line in lines)


def test_the_homelab_reconnects_with_no_new_key(observed: Observed, lab: Lab) -> None:
    assert observed.after.home_key == observed.before.home_key
    assert observed.home_backend == "Running"
    new = observed.own_address
    assert f"pong from {lab.config.name} (100.64.0.1) via {new}:41641" in observed.home_ping
    assert observed.home_derp_ipv4 == new  # DERP follows the new droplet's own address


def test_caddy_reuses_its_certificates(observed: Observed) -> None:
    assert observed.after.issued == observed.before.issued
    assert "obtaining certificate" not in observed.caddy_log
    assert "certificate obtained successfully" not in observed.caddy_log


def test_the_sites_come_back(observed: Observed) -> None:
    assert observed.first_page.startswith("blog app on homelab")


def test_the_replacement_is_a_new_droplet(observed: Observed) -> None:
    assert observed.after.instance_id != observed.before.instance_id
    assert observed.ssh_after.stdout.strip() == observed.after.instance_id


def test_the_operators_ssh_reaches_the_replacement_with_the_key_it_learned(
    observed: Observed, lab: Lab
) -> None:
    """The host key lives on the volume: the new droplet answers with the first one's, and
    ssh checks it against the tool's known_hosts (never turned off)."""
    assert observed.ssh_before.returncode == 0, observed.ssh_before.stderr
    assert observed.ssh_after.returncode == 0, observed.ssh_after.stderr
    assert observed.after.host_key == observed.before.host_key
    assert "REMOTE HOST IDENTIFICATION HAS CHANGED" not in observed.ssh_after.stderr
    assert lab.known_hosts.read_text().count("ssh-ed25519") == 1
