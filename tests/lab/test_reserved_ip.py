"""Scenario 8: which address STUN (UDP 3478) and WireGuard (UDP 41641) work on, egress off and on.

The design says: UDP sent to the reserved IP arrives on the anchor but is
answered from the droplet's own address, so DERP must advertise the own
address; and with egress_via_reserved_ip, reserved-ip-egress.sh keeps replies
from 3478 and 41641 on the own address. Probed from the visitor (no NAT: it
sees which address answers) and from the homelab (behind NAT: a reply from the
wrong address never reaches it). The real Headscale answers STUN; on 41641 a
socket shaped like WireGuard's (bound to 0.0.0.0, replying with sendto)
stands in while the edge's tailscaled is stopped, then the real tailscaled
shows the direct path with egress on.
"""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest
from support.lab.addresses import FIRST_DROPLET, HOME_ROUTER_WAN, RESERVED_IP, VISITOR
from support.lab.boxes import Box
from support.lab.droplet_edge import PROBE_DIR, PROBES
from support.lab.lab import Lab
from support.lab.probes import curl, probe
from support.lab.shell import wait_for

OWN = FIRST_DROPLET.own
SERVICES = PROBES["box_services.py"]
PORTS = {"stun": 3478, "echo": 41641}


def _matrix(lab: Lab) -> dict[str, dict[str, Any]]:
    """who -> "kind address" -> {"reply_from", "mapped"}."""
    targets = [
        f"{kind}:{address}:{port}" for kind, port in PORTS.items() for address in (RESERVED_IP, OWN)
    ]
    with ThreadPoolExecutor(2) as pool:
        visitor, home = pool.map(
            lambda box: probe(box, "udp", *targets), (lab.visitor, lab.home.box)
        )
    return {"visitor": visitor, "home": home}


def _answer(matrix: dict[str, dict[str, Any]], who: str, kind: str, address: str) -> str | None:
    reply = matrix[who][f"{kind}:{address}:{PORTS[kind]}"]["reply_from"]
    return reply.split(":")[0] if reply else None


def _local_echo(box: Box) -> bool:
    return bool(probe(box, "udp", "echo:127.0.0.1:41641")["echo:127.0.0.1:41641"]["reply_from"])


@dataclass
class Observed:
    off: dict[str, dict[str, Any]]
    egress: subprocess.CompletedProcess[str]
    rules: str
    default_route: str
    tcp_source: str
    on: dict[str, dict[str, Any]]
    on_without_port_rules: dict[str, dict[str, Any]]
    rerun: subprocess.CompletedProcess[str]
    rules_after_rerun: str
    edge_endpoint: str
    home_ping: str


@pytest.fixture(scope="module")
def observed(lab: Lab) -> Observed:
    edge = lab.edge
    lab.visitor.spawn("whoami", [sys.executable, SERVICES, "whoami", "8000"])
    edge.systemctl("stop", "tailscaled")  # the stand-in takes its port
    socket = ["python3", f"{PROBE_DIR}/box_services.py", "udp-echo", "41641"]
    edge.box.spawn("wireguard-socket", socket)
    try:
        wait_for("the stand-in on 41641", lambda: _local_echo(edge.box), 10)
        off = _matrix(lab)
        egress = edge.run_unit("homelab-tunnel-egress.service")
        rules = edge.box.run(["ip", "rule"]).stdout
        on = _matrix(lab)
        for priority in ("900", "901"):
            edge.box.run(["ip", "rule", "del", "priority", priority])
        on_without_port_rules = _matrix(lab)
        rerun = edge.run_unit("homelab-tunnel-egress.service")
        rules_after_rerun = edge.box.run(["ip", "rule"]).stdout
        edge.box.stop("wireguard-socket")
        edge.systemctl("start", "tailscaled")
        seen = Observed(
            off=off,
            egress=egress,
            rules=rules,
            default_route=edge.box.run(["ip", "route", "show", "default"]).stdout,
            tcp_source=curl(edge.box, f"http://{VISITOR.address}:8000/").stdout,
            on=on,
            on_without_port_rules=on_without_port_rules,
            rerun=rerun,
            rules_after_rerun=rules_after_rerun,
            edge_endpoint=edge.node.wait_direct("homelab", timeout=60),
            home_ping=lab.home.node.ping(lab.config.name),
        )
    finally:
        _restore(lab)
    return seen


def _restore(lab: Lab) -> None:
    """DigitalOcean's default routing, the real tailscaled, a direct path both ways."""
    lab.edge.box.stop("wireguard-socket")
    lab.visitor.stop("whoami")
    lab.default_routing()


def test_without_egress_the_reserved_ip_is_answered_from_the_own_address(
    observed: Observed,
) -> None:
    for kind in PORTS:
        assert _answer(observed.off, "visitor", kind, RESERVED_IP) == OWN, kind
        assert _answer(observed.off, "home", kind, RESERVED_IP) is None, kind  # NAT drops it


def test_without_egress_stun_and_wireguard_work_on_the_own_address(observed: Observed) -> None:
    for who in ("visitor", "home"):
        for kind in PORTS:
            assert _answer(observed.off, who, kind, OWN) == OWN, (who, kind)
    mapped = observed.off["home"][f"stun:{OWN}:3478"]["mapped"]
    assert mapped.startswith(f"{HOME_ROUTER_WAN.address}:")  # STUN sees the home router


def test_the_egress_script_sends_other_traffic_from_the_reserved_ip(observed: Observed) -> None:
    assert observed.egress.returncode == 0, observed.egress.stderr
    assert observed.default_route.startswith(f"default via {FIRST_DROPLET.anchor_gateway} ")
    assert observed.tcp_source == RESERVED_IP  # what the visitor saw connect to it
    assert f"from {OWN} lookup 100" in observed.rules
    for port in PORTS.values():
        assert f"ipproto udp sport {port} lookup 100" in observed.rules


def test_with_egress_stun_and_wireguard_keep_the_own_address(observed: Observed) -> None:
    for who in ("visitor", "home"):
        for kind in PORTS:
            assert _answer(observed.on, who, kind, OWN) == OWN, (who, kind)


def test_with_egress_the_reserved_ip_is_still_answered_from_the_own_address(
    observed: Observed,
) -> None:
    # So DERP must advertise the own address in both modes.
    for kind in PORTS:
        assert _answer(observed.on, "visitor", kind, RESERVED_IP) == OWN, kind
        assert _answer(observed.on, "home", kind, RESERVED_IP) is None, kind


def test_without_its_port_rules_egress_would_break_stun_and_wireguard(observed: Observed) -> None:
    for kind in PORTS:
        assert _answer(observed.on_without_port_rules, "visitor", kind, OWN) == RESERVED_IP, kind
        assert _answer(observed.on_without_port_rules, "home", kind, OWN) is None, kind


def test_running_the_egress_script_again_changes_nothing(observed: Observed) -> None:
    assert observed.rerun.returncode == 0, observed.rerun.stderr
    assert observed.rules_after_rerun == observed.rules


def test_with_egress_the_path_is_direct_on_the_own_address(observed: Observed, lab: Lab) -> None:
    assert observed.edge_endpoint.startswith(f"{HOME_ROUTER_WAN.address}:")
    assert f"pong from {lab.config.name} (100.64.0.1) via {OWN}:41641" in observed.home_ping
