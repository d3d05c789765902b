"""Scenario 4: the path is direct, and doctor and the health agent say so from real output."""

from __future__ import annotations

import json

from support.lab.addresses import HOME_ROUTER_WAN
from support.lab.lab import Lab


def test_the_edge_reaches_the_homelab_directly(lab: Lab) -> None:
    endpoint = lab.edge.node.wait_direct("homelab")
    assert endpoint.startswith(f"{HOME_ROUTER_WAN.address}:")  # the home router's mapping
    status = json.loads(lab.edge.node.cli("status", "--json").stdout)
    homelab = next(p for p in status["Peer"].values() if p["HostName"] == "homelab")
    assert homelab["CurAddr"] == endpoint
    assert homelab["Relay"] == "headscale"  # its home region: the edge's own DERP


def test_doctor_on_the_edge_finds_nothing_wrong(lab: Lab) -> None:
    done = lab.doctor()
    assert done.returncode == 0, done.stdout
    assert f"direct {HOME_ROUTER_WAN.address}:" in done.stdout
    assert "1 site upstream(s) direct" in done.stdout


def test_the_health_agent_reports_ok_and_stays_quiet(lab: Lab) -> None:
    posts = lab.edge.start_webhook()
    done = lab.edge.run_unit("homelab-tunnel-health.service")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "homelab-tunnel health: ok: 1 site upstream(s) direct" in done.stdout
    assert posts.read_text() == ""  # nothing to report, nothing sent
