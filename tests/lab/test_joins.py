"""Scenario 2: the edge joins over loopback; the homelab through Caddy, with the printed script."""

from __future__ import annotations

import json

from support.lab.addresses import HOME_ROUTER_WAN
from support.lab.lab import Lab
from support.lab.nodes import TailscaleNode


def _prefs(node: TailscaleNode) -> dict[str, object]:
    return dict(json.loads(node.cli("debug", "prefs").stdout))


def test_the_edge_joined_over_loopback_without_tailnet_dns(lab: Lab) -> None:
    prefs = _prefs(lab.edge.node)
    assert prefs["ControlURL"] == "http://127.0.0.1:8080"
    assert prefs["CorpDNS"] is False
    assert prefs["Hostname"] == lab.config.name
    assert "tail.lab.example" not in lab.edge.box.path("/etc/resolv.conf").read_text()


def test_the_edge_is_its_own_headscale_user(lab: Lab) -> None:
    owners = {node["name"]: node["user"]["name"] for node in lab.edge.nodes()}
    assert owners == {lab.config.name: "edge", "homelab": "homelab"}


def test_the_homelab_ran_the_printed_script_to_the_end(lab: Lab) -> None:
    assert lab.join.returncode == 0, lab.join.stderr
    assert lab.join_script.startswith("#!/usr/bin/env bash\n")
    assert (
        f"pong from {lab.config.name} (100.64.0.1) via {lab.edge.droplet.own}:41641"
        in lab.join.stdout
    )
    assert "joined as homelab" in lab.join.stdout


def test_the_homelab_key_was_minted_on_the_edge_over_ssh(lab: Lab) -> None:
    """Real ssh from the homelab to the droplet's sshd, as root with the operator's key."""
    accepted = lab.edge.box.log("ssh")
    assert f"Accepted publickey for root from {HOME_ROUTER_WAN.address} " in accepted
    keys = json.loads(lab.edge.headscale("preauthkeys", "list", "-o", "json").stdout)
    homelab = [key for key in keys if key["user"]["name"] == "homelab"]
    assert len(homelab) == 1 and homelab[0]["used"] is True


def test_the_homelab_logged_in_through_caddy(lab: Lab) -> None:
    assert _prefs(lab.home.node)["ControlURL"] == lab.config.headscale_url
    # Caddy forwarded the client's address, and Headscale trusted it (trusted_proxies).
    registrations = [
        line
        for line in lab.edge.box.log("headscale").splitlines()
        if "path=/machine/register" in line
    ]
    assert any(f"remote={HOME_ROUTER_WAN.address} " in line for line in registrations)


def test_the_first_join_learned_the_edges_host_key_and_showed_it(lab: Lab) -> None:
    """No host-key check was turned off: ssh learned the key (accept-new), and the script
    printed the fingerprint the edge's "edge ready" line gives."""
    fingerprint = lab.edge.host_key_fingerprint()
    assert f"edge host key: {fingerprint} (ED25519)" in lab.join.stdout
    assert lab.edge.outcome().endswith(f", ssh host key {fingerprint}")
    assert "StrictHostKeyChecking=no" not in lab.join_script
