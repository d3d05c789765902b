"""Scenario 11: raw TCP and UDP ports through the reserved IP into the tailnet, applied in place.

One sequence, observed once. The homelab runs peer echoes (each answer starts
with the address the service saw the packet come from). The lab's config gets
three `[[ports]]` entries through the config bucket while everything runs: UDP
27015 and TCP 25565 (to 25566) on the homelab, UDP 27020-27022 (to
37020-37022) on `gamebox`, a machine that joins only later. The cloud firewall
generated from the synthesized stack stands on the droplet's link. Then: the
echoes from the visitor, unlisted ports, the ACL from the edge, gamebox
joining and coming back under a new address while a flow runs, a 30 s UDP flow
while UDP between home and edge is blocked and unblocked, reserved-IP egress,
and what doctor and the health agent say. The lab is left as it was found.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from support.droplet.firewall import Firewall, from_stack
from support.lab.addresses import FIRST_DROPLET, GAMEBOX, HOME_ROUTER_WAN, RESERVED_IP
from support.lab.boxes import Box
from support.lab.deploy import write_lab_config
from support.lab.droplet_edge import PROBES as PROBE_FILES
from support.lab.lab import Lab
from support.lab.probes import PROBES, probe
from support.lab.shell import wait_for

from homelab_tunnel.edge.port_agent import STATUS_FILE

OWN = FIRST_DROPLET.own
SERVICES = PROBE_FILES["box_services.py"]
PORTS = [
    {"protocol": "udp", "port": 27015, "upstream": "homelab"},
    {"protocol": "tcp", "port": 25565, "upstream": "homelab", "upstream_port": 25566},
    {"protocol": "udp", "port": "27020-27022", "upstream": "gamebox", "upstream_port": 37020},
]
# Listening on the homelab, but in no [[ports]] entry.
UNLISTED = {"udp": 27099, "tcp": 2222}
FLOW_INTERVAL_MS = 20
FLOW_PACKETS = 1500  # 30 s
BLOCK_AT, UNBLOCK_AT = 5.0, 20.0  # seconds into the flow
IN_FLIGHT = 0.2  # seconds: a packet sent this long before the block may be lost to it
# The port agent looks every 5 s; the new node reaches the edge's netmap within a second or two.
# A ceiling, not a measurement: on a loaded machine the agent's look itself takes seconds.
FOLLOWS_WITHIN = 20.0
# Tailscale's own part of a move: the new node's first WireGuard handshake with the edge and
# its packet filter letting the edge in, counted from its `tailscale up` returning.
REJOIN_SETTLES = 8.0


def exchange(box: Box, protocol: str, address: str, port: int, message: str = "hello") -> Any:
    return probe(box, "exchange", protocol, address, port, message)


def answered(box: Box, protocol: str, address: str, port: int, timeout: float) -> float:
    """Seconds until `box` gets an answer on `port` (LabError if none within `timeout`)."""
    started = time.monotonic()
    wait_for(
        f"{box.role}: {protocol} {address}:{port} answered",
        lambda: exchange(box, protocol, address, port)["reply"] is not None,
        timeout,
        0.1,
    )
    return time.monotonic() - started


class Flow:
    """A UDP flow from one socket of `box`, run in the background (box_probes.py udp-flow):
    `packets` of them, or (0) until `result()`."""

    def __init__(self, box: Box, address: str, port: int, packets: int) -> None:
        argv = [sys.executable, PROBES, "udp-flow", address, port, FLOW_INTERVAL_MS, packets]
        self.process = subprocess.Popen(
            box.command(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.process.stdout is not None
        self.started = float(json.loads(self.process.stdout.readline())["started"])

    def result(self) -> dict[str, Any]:
        out, _ = self.process.communicate("stop\n", timeout=120)
        return dict(json.loads(out))


@dataclass
class FlowRecord:
    """When each numbered packet was sent, and which came back."""

    sent: dict[int, float]
    answered: set[int]
    marks: dict[str, float] = field(default_factory=dict)  # wall clock of events

    @classmethod
    def of(cls, result: dict[str, Any]) -> FlowRecord:
        sent = {int(number): at for number, at in result["sent"].items()}
        return cls(sent, {int(answer[0]) for answer in result["answers"]})

    def lost(self, after: float = 0.0, before: float = float("inf")) -> list[int]:
        return [
            n
            for n, at in sorted(self.sent.items())
            if after <= at < before and n not in self.answered
        ]

    def longest_gap(self) -> float:
        """The longest run of lost packets, in seconds."""
        longest, run = 0, 0
        for number in sorted(self.sent):
            run = 0 if number in self.answered else run + 1
            longest = max(longest, run)
        return longest * FLOW_INTERVAL_MS / 1000


@dataclass
class Observed:
    before: Any
    version: str
    edge_boot: str
    caddy_pid: int
    seconds_to_forward: float
    udp: Any
    tcp: Any
    udp_own: Any
    unlisted: dict[str, Any]
    dropped: int
    unlisted_without_firewall: dict[str, Any]
    from_edge: dict[str, Any]
    on_the_homelab: dict[str, Any]
    homelab_address: str
    gamebox_waiting: Any
    health_waiting: subprocess.CompletedProcess[str]
    status_waiting: dict[str, Any]
    seconds_to_gamebox: float
    gamebox: Any
    gamebox_addresses: list[str]
    followed_to: str | None  # gamebox's address in the port agent's status after the move
    rejoin_flow: FlowRecord
    relay_flow: FlowRecord
    paths: dict[str, Any]
    egress: dict[str, Any]
    doctor: subprocess.CompletedProcess[str]
    health: subprocess.CompletedProcess[str]
    policy: dict[str, Any]


def _status(lab: Lab) -> dict[str, Any]:
    return dict(json.loads(lab.edge.box.path(STATUS_FILE).read_text()))


def _moved(lab: Lab, first: str) -> str | None:
    """gamebox's address in the port agent's status, once it is another than `first`."""
    (address,) = [e["address"] for e in _status(lab)["ports"] if e["upstream"] == "gamebox"]
    return address if address not in (None, first) else None


def _firewall(lab: Lab, document: dict[str, Any]) -> Firewall:
    """The cloud firewall of `document`, as synthesized."""
    from homelab_tunnel.infra.synth import synthesize

    path = lab.directory / "synth" / "lab.toml"
    path.parent.mkdir(exist_ok=True)
    config = write_lab_config(path, document)
    stack = synthesize(config, path.parent / "cdktf.out", config_path=path)
    return from_stack(json.loads(stack.read_text()))


def _unlisted(lab: Lab) -> dict[str, Any]:
    return {
        protocol: exchange(lab.visitor, protocol, RESERVED_IP, port)
        for protocol, port in UNLISTED.items()
    }


def _relay_flow(lab: Lab) -> tuple[FlowRecord, dict[str, Any]]:
    """30 s of UDP to the homelab while UDP between home and edge is blocked, then not."""
    edge = [lab.edge.droplet.own, lab.edge.droplet.anchor]
    lab.edge.node.wait_direct("homelab")
    flow = Flow(lab.visitor, RESERVED_IP, 27015, FLOW_PACKETS)
    marks: dict[str, float] = {}
    paths: dict[str, Any] = {}
    time.sleep(max(flow.started + BLOCK_AT - time.time(), 0))
    marks["blocked"] = time.time()
    with lab.internet.udp_blocked(HOME_ROUTER_WAN.address, edge):
        paths["relayed"] = lab.edge.node.wait_relayed("homelab", timeout=15)
        marks["relayed"] = time.time()
        time.sleep(max(flow.started + UNBLOCK_AT - time.time(), 0))
    marks["unblocked"] = time.time()
    record = FlowRecord.of(flow.result())
    record.marks = marks
    paths["direct_again"] = lab.edge.node.wait_direct("homelab", timeout=60)
    lab.home.node.wait_direct(lab.config.name, timeout=60)
    return record, paths


def _egress(lab: Lab) -> dict[str, Any]:
    """Answers with reserved-IP egress on: from the address the visitor wrote to."""
    done = lab.edge.run_unit("homelab-tunnel-egress.service")
    assert done.returncode == 0, done.stderr
    try:
        return {
            "udp_reserved": exchange(lab.visitor, "udp", RESERVED_IP, 27015),
            "udp_own": exchange(lab.visitor, "udp", OWN, 27015),
            "tcp_reserved": exchange(lab.visitor, "tcp", RESERVED_IP, 25565),
            "default_route": lab.edge.box.run(["ip", "route", "show", "default"]).stdout,
        }
    finally:
        lab.default_routing()


@pytest.fixture(scope="module")
def observed(lab: Lab) -> Iterator[Observed]:
    home = lab.home.box
    home.spawn("udp-echo", [sys.executable, SERVICES, "peer-echo", "udp", 27015, UNLISTED["udp"]])
    home.spawn("tcp-echo", [sys.executable, SERVICES, "peer-echo", "tcp", 25566, UNLISTED["tcp"]])
    gamebox = None
    original = lab.document()
    try:
        wait_for(
            "the homelab's echoes", lambda: exchange(home, "udp", "127.0.0.1", 27015)["reply"], 10
        )
        before = exchange(lab.visitor, "udp", RESERVED_IP, 27015)
        boot, caddy = lab.edge.boot_id(), lab.edge.main_pid("caddy")
        # `terraform apply`: the firewall's new rules, the config object in the bucket.
        document = lab.document(ports=PORTS)
        firewall = _firewall(lab, document)
        lab.internet.apply_firewall(firewall)
        version = lab.apply_in_place(document)
        seconds = answered(lab.visitor, "udp", RESERVED_IP, 27015, 20)
        udp = exchange(lab.visitor, "udp", RESERVED_IP, 27015)
        tcp = exchange(lab.visitor, "tcp", RESERVED_IP, 25565)
        udp_own = exchange(lab.visitor, "udp", OWN, 27015)
        drops = lab.internet.firewall_drops("inbound")
        unlisted = _unlisted(lab)
        dropped = lab.internet.firewall_drops("inbound") - drops
        lab.internet.remove_firewall()
        unlisted_without = _unlisted(lab)
        lab.internet.apply_firewall(firewall)
        homelab = str(lab.edge.node.peer("homelab")["TailscaleIPs"][0])
        from_edge = {
            f"{protocol} {port}": exchange(lab.edge.box, protocol, homelab, port)
            for protocol, port in (("udp", 27015), ("tcp", 25566), *UNLISTED.items())
        }
        on_the_homelab = {
            protocol: exchange(home, protocol, "127.0.0.1", port)
            for protocol, port in UNLISTED.items()
        }
        # gamebox is named by the config but not on the tailnet yet.
        waiting = exchange(lab.visitor, "udp", RESERVED_IP, 27021)
        status_waiting = _status(lab)
        health_waiting = lab.edge.run_unit("homelab-tunnel-health.service")
        gamebox = lab.join_machine("gamebox", GAMEBOX)
        gamebox.box.spawn(
            "udp-echo", [sys.executable, SERVICES, "peer-echo", "udp", 37020, 37021, 37022]
        )
        to_gamebox = answered(lab.visitor, "udp", RESERVED_IP, 27021, 30)
        first = str(lab.edge.node.peer("gamebox")["TailscaleIPs"][0])
        reached = exchange(lab.visitor, "udp", RESERVED_IP, 27021)
        # gamebox registered anew (a new address) while one flow keeps sending.
        flow = Flow(lab.visitor, RESERVED_IP, 27020, 0)
        time.sleep(3)
        rejoining = time.time()
        lab.rejoin(gamebox, "gamebox")
        rejoined = time.time()
        # The agent writes its status once the table and the flows it deleted follow the move.
        wait_for("the port agent follows gamebox", lambda: _moved(lab, first), 60, 0.2)
        followed = time.time()
        time.sleep(max(followed, rejoined + REJOIN_SETTLES) - time.time() + 3)
        rejoin_flow = FlowRecord.of(flow.result())
        rejoin_flow.marks.update(rejoining=rejoining, rejoined=rejoined, followed=followed)
        followed_to = _moved(lab, first)
        second = str(lab.edge.node.peer("gamebox")["TailscaleIPs"][0])
        relay_flow, paths = _relay_flow(lab)
        egress = _egress(lab)
        yield Observed(
            before=before,
            version=version,
            edge_boot=boot,
            caddy_pid=caddy,
            seconds_to_forward=seconds,
            udp=udp,
            tcp=tcp,
            udp_own=udp_own,
            unlisted=unlisted,
            dropped=dropped,
            unlisted_without_firewall=unlisted_without,
            from_edge=from_edge,
            on_the_homelab=on_the_homelab,
            homelab_address=homelab,
            gamebox_waiting=waiting,
            health_waiting=health_waiting,
            status_waiting=status_waiting,
            seconds_to_gamebox=to_gamebox,
            gamebox=reached,
            gamebox_addresses=[first, second],
            followed_to=followed_to,
            rejoin_flow=rejoin_flow,
            relay_flow=relay_flow,
            paths=paths,
            egress=egress,
            doctor=lab.doctor(),
            health=lab.edge.run_unit("homelab-tunnel-health.service"),
            policy=json.loads(
                "\n".join(
                    line
                    for line in lab.edge.box.path("/etc/headscale/policy.hujson")
                    .read_text()
                    .splitlines()
                    if not line.startswith("//")
                )
            ),
        )
    finally:
        lab.apply_firewall()  # the lab config's own, without the ports
        for name in ("udp-echo", "tcp-echo"):
            home.stop(name)
        if gamebox is not None:
            gamebox.box.destroy()
            lab.internet.detach("gamebox0")
        lab.apply_in_place(original)


# ---------------------------------------------------------------------------
# Through the reserved IP, in place
# ---------------------------------------------------------------------------


def test_ports_are_applied_in_place_without_a_new_droplet_or_a_caddy_restart(
    observed: Observed, lab: Lab
) -> None:
    assert observed.before["reply"] is None  # nothing forwarded before the config had ports
    assert lab.edge.boot_id() == observed.edge_boot
    assert lab.edge.main_pid("caddy") == observed.caddy_pid
    assert observed.seconds_to_forward < 20


def test_a_udp_echo_reaches_the_homelab_and_answers_from_the_reserved_ip(
    observed: Observed,
) -> None:
    # The homelab sees the edge's tailnet address as the client (masquerade out of tailscale0).
    assert observed.udp["reply"] == "100.64.0.1 hello"
    assert observed.udp["from"] == f"{RESERVED_IP}:27015"


def test_a_tcp_echo_reaches_the_homelab_on_its_upstream_port(observed: Observed) -> None:
    assert observed.tcp["reply"] == "100.64.0.1 hello"
    assert observed.tcp["from"] == f"{RESERVED_IP}:25565"


def test_the_droplets_own_address_forwards_too_and_answers_from_itself(
    observed: Observed,
) -> None:
    assert observed.udp_own == {"reply": "100.64.0.1 hello", "from": f"{OWN}:27015"}


# ---------------------------------------------------------------------------
# What is not forwarded: the firewall model, the ACL
# ---------------------------------------------------------------------------


def test_a_port_not_configured_is_dropped_by_the_firewall_model(observed: Observed) -> None:
    for protocol, seen in observed.unlisted.items():
        assert seen["reply"] is None, protocol
        assert "TimeoutError" in seen["error"], seen
    assert observed.dropped >= 2


def test_negative_twin_without_the_firewall_the_edge_itself_refuses_the_tcp_port(
    observed: Observed,
) -> None:
    # Nothing on the edge listens there: a reset, not the firewall's silence.
    assert "ConnectionRefusedError" in observed.unlisted_without_firewall["tcp"]["error"]


def test_the_acl_lets_the_edge_reach_exactly_the_forwarded_ports(observed: Observed) -> None:
    assert observed.from_edge["udp 27015"]["reply"] == "100.64.0.1 hello"
    assert observed.from_edge["tcp 25566"]["reply"] == "100.64.0.1 hello"
    for protocol, port in UNLISTED.items():
        seen = observed.from_edge[f"{protocol} {port}"]
        assert seen["reply"] is None, (protocol, seen)
        assert "TimeoutError" in seen["error"], seen  # dropped by the homelab's tailscaled


def test_negative_twin_the_unlisted_ports_answer_on_the_homelab_itself(
    observed: Observed,
) -> None:
    for protocol, seen in observed.on_the_homelab.items():
        assert seen["reply"] == "127.0.0.1 hello", protocol


def test_the_policy_names_each_port_with_its_protocol(observed: Observed) -> None:
    acls = observed.policy["acls"]
    rules = {rule["proto"]: rule["dst"] for rule in acls if rule["src"] == ["edge@"]}
    assert rules == {
        "tcp": ["homelab@:2342,8080,25566"],
        "udp": ["gamebox@:37020-37022", "homelab@:27015"],
    }
    # The lab's metrics scraper keeps its own rule: TCP to the edge's metrics port alone.
    assert [rule for rule in acls if rule["src"] != ["edge@"]] == [
        {"action": "accept", "src": ["homelab@"], "proto": "tcp", "dst": ["edge@:9180"]}
    ]


# ---------------------------------------------------------------------------
# Upstream addresses learned and followed
# ---------------------------------------------------------------------------


def test_a_machine_not_yet_on_the_tailnet_is_reported_not_forwarded(observed: Observed) -> None:
    assert observed.gamebox_waiting["reply"] is None
    (entry,) = [e for e in observed.status_waiting["ports"] if e["upstream"] == "gamebox"]
    assert entry["address"] is None
    assert observed.health_waiting.returncode == 1
    assert (
        "problem: port udp 27020-27022: not forwarded: gamebox.tail.lab.example has no "
        "tailnet address" in observed.health_waiting.stdout
    )


def test_a_machine_that_joins_is_forwarded_to_within_seconds(observed: Observed) -> None:
    assert observed.gamebox["reply"] == "100.64.0.1 hello"
    assert observed.seconds_to_gamebox < 15  # the agent looks every 5 s


def test_a_flow_follows_the_machine_to_its_new_address(observed: Observed) -> None:
    first, second = observed.gamebox_addresses
    assert first != second  # registered anew: Headscale's sequential allocator moved on
    assert observed.followed_to == second
    flow = observed.rejoin_flow
    assert flow.marks["followed"] - flow.marks["rejoined"] < FOLLOWS_WITHIN
    # The same socket, the same conntrack tuple: answered again once the agent followed and
    # the new node settled in the tailnet.
    since = max(flow.marks["followed"] + IN_FLIGHT, flow.marks["rejoined"] + REJOIN_SETTLES)
    after = [n for n, at in flow.sent.items() if at > since]
    assert len(after) > 100  # 3 s of the flow at least
    assert all(number in flow.answered for number in after), flow.lost()
    assert flow.lost(before=flow.marks["rejoining"]) == []  # answered before the move too


# ---------------------------------------------------------------------------
# A long UDP flow while the tailnet path moves to the edge's DERP and back
# ---------------------------------------------------------------------------


def test_the_path_moved_to_the_edges_relay_and_back(observed: Observed) -> None:
    assert observed.paths["relayed"]["Relay"] == "headscale"
    assert observed.paths["relayed"]["CurAddr"] == ""
    assert observed.paths["direct_again"].startswith(f"{HOME_ROUTER_WAN.address}:")


def test_a_long_udp_flow_keeps_working_while_the_path_moves_to_derp(observed: Observed) -> None:
    flow = observed.relay_flow
    marks = flow.marks
    assert len(flow.sent) == FLOW_PACKETS
    # Before the block: nothing lost (but a packet still on its way when the block began).
    assert flow.lost(before=marks["blocked"] - IN_FLIGHT) == []
    # The one gap is Tailscale's: it trusts a silent direct path for 6.5 s
    # (wgengine/magicsock trustUDPAddrDuration) before it also sends over DERP.
    assert flow.longest_gap() <= 7.0, flow.longest_gap()
    # Relayed, the flow is whole again: at most a few lost from then to the unblock.
    assert len(flow.lost(after=marks["relayed"] + 1, before=marks["unblocked"])) <= 3
    # Back to direct: at most a few lost.
    assert len(flow.lost(after=marks["unblocked"])) <= 3


# ---------------------------------------------------------------------------
# Reserved-IP egress, and what doctor and the health agent say
# ---------------------------------------------------------------------------


def test_with_egress_replies_still_leave_from_the_address_the_client_wrote_to(
    observed: Observed,
) -> None:
    egress = observed.egress
    assert egress["default_route"].startswith(f"default via {FIRST_DROPLET.anchor_gateway} ")
    assert egress["udp_reserved"] == {"reply": "100.64.0.1 hello", "from": f"{RESERVED_IP}:27015"}
    assert egress["udp_own"] == {"reply": "100.64.0.1 hello", "from": f"{OWN}:27015"}
    assert egress["tcp_reserved"]["reply"] == "100.64.0.1 hello"


def test_doctor_names_each_forwarded_port_and_checks_its_upstream(observed: Observed) -> None:
    out = observed.doctor.stdout
    assert observed.doctor.returncode == 0, out
    assert "ok: port udp 27015: forwarded to homelab:27015 (" in out
    assert "ok: port udp 27020-27022: forwarded to gamebox:37020 (" in out
    assert "gamebox" in out and "direct" in out


def test_the_health_agent_is_satisfied_once_every_port_is_forwarded(observed: Observed) -> None:
    assert observed.health.returncode == 0, observed.health.stdout
