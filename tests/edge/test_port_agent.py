"""The port agent's decisions, with nft, conntrack and tailscaled as stand-ins: what it applies,
when, what it records, and what it does when an upstream moves or tailscaled is gone.

The table itself, on a real kernel: tests/edge/test_forwarding_kernel.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from homelab_tunnel.edge.forwards import (
    TABLE,
    Forward,
    port_findings,
    read_forwards,
    ruleset,
    tailnet_addresses,
    targets,
)
from homelab_tunnel.edge.port_agent import PORTS_FILE, STATUS_FILE, PortAgent, Refused
from homelab_tunnel.findings import Severity

GAME = {"protocol": "udp", "port": "27015", "upstream": "gtr6",
        "upstream_host": "gtr6.tail.example.net", "upstream_port": 27015}  # fmt: skip
RANGE = {"protocol": "udp", "port": "27020-27022", "upstream": "gtr6",
         "upstream_host": "gtr6.tail.example.net", "upstream_port": 37020}  # fmt: skip
BY_ADDRESS = {"protocol": "tcp", "port": "2222", "upstream": "100.64.0.9",
              "upstream_host": "100.64.0.9", "upstream_port": 22}  # fmt: skip


def _status(**peers: str) -> dict[str, Any]:
    """A LocalAPI status with one peer per `name=address`."""
    return {
        "BackendState": "Running",
        "Peer": {
            f"nodekey:{name}": {
                "DNSName": f"{name}.tail.example.net.",
                "TailscaleIPs": [address, "fd7a:115c:a1e0::9"],
            }
            for name, address in peers.items()
        },
    }


@dataclass
class Edge:
    root: Path
    tailnet: Mapping[str, Any] | None = None
    nft_error: str = ""
    calls: list[tuple[list[str], str]] = field(default_factory=list)

    def run(self, argv: Sequence[str], stdin: str) -> subprocess.CompletedProcess[str]:
        self.calls.append((list(argv), stdin))
        if argv[0] == "nft" and self.nft_error:
            return subprocess.CompletedProcess(argv, 1, "", f"{self.nft_error}\nmore")
        return subprocess.CompletedProcess(argv, 0, "", "")

    def agent(self) -> PortAgent:
        return PortAgent(root=self.root, run=self.run, tailnet=lambda: self.tailnet)

    def configure(self, *entries: dict[str, Any]) -> None:
        path = self.root / PORTS_FILE.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(list(entries)))

    def status(self) -> dict[str, Any]:
        return dict(json.loads((self.root / STATUS_FILE.lstrip("/")).read_text()))

    def scripts(self) -> list[str]:
        return [stdin for argv, stdin in self.calls if argv[:2] == ["nft", "-f"]]

    def forgotten(self) -> list[list[str]]:
        return [argv for argv, _ in self.calls if argv[0] == "conntrack"]


@pytest.fixture
def edge(tmp_path: Path) -> Edge:
    forwarding = tmp_path / "proc/sys/net/ipv4/ip_forward"  # as the kernel has it
    forwarding.parent.mkdir(parents=True)
    forwarding.write_text("0\n")
    return Edge(tmp_path)


def test_a_port_goes_to_its_upstreams_tailnet_address(edge: Edge) -> None:
    edge.configure(GAME, BY_ADDRESS)
    edge.tailnet = _status(gtr6="100.64.0.7")
    said = edge.agent().apply()
    assert said == (
        "forwarding udp 27015 -> gtr6:27015 (100.64.0.7); tcp 2222 -> 100.64.0.9:22 (100.64.0.9)"
    )
    (script,) = edge.scripts()
    assert 'iifname "eth0" fib daddr type local udp dport 27015 dnat to 100.64.0.7\n' in script
    assert "tcp dport 2222 dnat to 100.64.0.9:22\n" in script
    assert [entry["address"] for entry in edge.status()["ports"]] == ["100.64.0.7", "100.64.0.9"]
    assert (edge.root / "proc/sys/net/ipv4/ip_forward").read_text() == "1\n"


def test_the_table_is_replaced_only_when_it_would_change(edge: Edge) -> None:
    edge.configure(GAME)
    edge.tailnet = _status(gtr6="100.64.0.7")
    agent = edge.agent()
    agent.apply()
    agent.apply()
    assert len(edge.scripts()) == 1
    edge.tailnet = _status(gtr6="100.64.0.8")
    agent.apply()
    assert len(edge.scripts()) == 2


def test_a_machine_not_on_the_tailnet_yet_is_untracked_and_recorded_as_waiting(
    edge: Edge,
) -> None:
    edge.configure(GAME)
    edge.tailnet = _status(homelab="100.64.0.2")
    said = edge.agent().apply()
    assert said == "forwarding udp 27015 -> gtr6:27015 (waiting for its tailnet address)"
    (script,) = edge.scripts()
    assert "udp dport 27015 notrack" in script
    assert "dnat" not in script.split("chain prerouting", 1)[1].split("}", 1)[0]
    assert edge.status()["ports"][0]["address"] is None


def test_with_tailscaled_silent_the_addresses_recorded_last_keep_forwarding(edge: Edge) -> None:
    edge.configure(GAME)
    edge.tailnet = _status(gtr6="100.64.0.7")
    edge.agent().apply()
    edge.tailnet = None  # tailscaled restarting
    agent = edge.agent()  # a new process: the reload's
    agent.apply()
    assert "dnat to 100.64.0.7" in edge.scripts()[-1]
    edge.tailnet = {"BackendState": "Starting", "Peer": {}}  # up again, no netmap yet
    edge.agent().apply()
    assert "dnat to 100.64.0.7" in edge.scripts()[-1]
    assert edge.forgotten() == []


def test_flows_to_an_address_a_port_left_are_forgotten(edge: Edge) -> None:
    edge.configure(GAME, RANGE)
    edge.tailnet = _status(gtr6="100.64.0.7")
    agent = edge.agent()
    agent.apply()
    assert edge.forgotten() == []
    edge.tailnet = _status(gtr6="100.64.0.8")
    agent.apply()
    assert edge.forgotten() == [
        ["conntrack", "-D", "-p", "udp", "--dst-nat", "--reply-src", "100.64.0.7",
         "--reply-port-src", "27015"],
        ["conntrack", "-D", "-p", "udp", "--dst-nat", "--reply-src", "100.64.0.7"],
    ]  # fmt: skip


def test_flows_of_a_removed_port_are_forgotten_and_no_ports_remove_the_table(
    edge: Edge,
) -> None:
    edge.configure(GAME)
    edge.tailnet = _status(gtr6="100.64.0.7")
    agent = edge.agent()
    agent.apply()
    edge.configure()
    assert agent.apply() == "no ports forwarded"
    assert edge.scripts()[-1] == f"table ip {TABLE}\ndelete table ip {TABLE}\n"
    assert len(edge.forgotten()) == 1
    assert edge.status()["ports"] == []


def test_a_table_nft_refuses_is_recorded_and_raised(edge: Edge) -> None:
    edge.configure(GAME)
    edge.tailnet = _status(gtr6="100.64.0.7")
    edge.nft_error = "Error: Could not process rule: No such file or directory"
    with pytest.raises(Refused, match="nft did not apply the forwarding table: Error: Could not"):
        edge.agent().apply()
    assert edge.status()["error"] == "Error: Could not process rule: No such file or directory"


def test_check_runs_nft_dry_with_a_stand_in_for_unknown_addresses(
    edge: Edge, tmp_path: Path
) -> None:
    candidate = tmp_path / "candidate.json"
    candidate.write_text(json.dumps([GAME]))
    edge.tailnet = _status()
    assert edge.agent().check(candidate) == "1 port(s) checked by nft"
    ((argv, script),) = edge.calls
    assert argv == ["nft", "-c", "-f", "-"]
    assert "dnat to 100.64.0.0" in script  # every rule is checked, even one waiting


def test_check_refuses_a_list_that_is_not_one(edge: Edge, tmp_path: Path) -> None:
    candidate = tmp_path / "candidate.json"
    candidate.write_text(json.dumps([{**GAME, "protocol": "sctp"}]))
    with pytest.raises(Refused, match="not a port list: entry 0: protocol must be tcp or udp"):
        edge.agent().check(candidate)
    assert edge.calls == []


def test_negative_twin_check_refuses_what_nft_refuses(edge: Edge, tmp_path: Path) -> None:
    candidate = tmp_path / "candidate.json"
    candidate.write_text(json.dumps([GAME]))
    edge.nft_error = "Error: syntax error"
    with pytest.raises(Refused, match="nft refuses the table: Error: syntax error"):
        edge.agent().check(candidate)


# ---------------------------------------------------------------------------
# The pure parts: ports.json, the status's addresses, the ruleset's shape
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("{}", "not a list of ports"),
        ("[1]", "entry 0: not an object"),
        (json.dumps([{**GAME, "port": "x"}]), "entry 0: port must be N or N-M"),
        (json.dumps([{**GAME, "upstream_port": "1"}]), "upstream_port a number"),
        (json.dumps([{**RANGE, "upstream_port": 65535}]), "ports out of range"),
        (json.dumps([{**GAME, "upstream_host": ""}]), "upstream_host must be a name"),
        ("[", "not JSON"),
    ],
)
def test_a_malformed_port_list_is_named(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        read_forwards(text)


def test_only_tailnet_ipv4_addresses_are_taken_from_the_status() -> None:
    status = _status(gtr6="100.64.0.7", odd="203.0.113.9")
    assert tailnet_addresses(status) == {"gtr6.tail.example.net": "100.64.0.7"}


def test_a_range_keeps_its_ports_or_is_mapped_one_to_one() -> None:
    same = Forward("udp", 27020, 27022, "gtr6", "gtr6.tail.example.net", 27020)
    moved = Forward("udp", 27020, 27022, "gtr6", "gtr6.tail.example.net", 37020)
    script = ruleset(targets([same, moved], {"gtr6.tail.example.net": "100.64.0.7"}))
    assert "udp dport 27020-27022 dnat to 100.64.0.7\n" in script
    assert (
        "udp dport 27020-27022 dnat to 100.64.0.7 : udp dport map "
        "{ 27020 : 37020, 27021 : 37021, 27022 : 37022 }\n" in script
    )


def test_findings_say_where_each_port_goes_or_why_it_does_not() -> None:
    forwards = read_forwards(json.dumps([GAME, RANGE]))
    agent_status = {
        "error": None,
        "ports": [{**GAME, "address": "100.64.0.7"}, {**RANGE, "address": None}],
    }
    found = port_findings(forwards, agent_status)
    assert [(f.severity, f.text) for f in found] == [
        (Severity.OK, "port udp 27015: forwarded to gtr6:27015 (100.64.0.7)"),
        (
            Severity.PROBLEM,
            "port udp 27020-27022: not forwarded: gtr6.tail.example.net has no tailnet address "
            "(not joined, or renamed?); it is forwarded within seconds of joining",
        ),
    ]
    assert port_findings(forwards, None)[0].severity is Severity.PROBLEM
    assert port_findings([], None) == []
    stale = port_findings(forwards[:1], {"ports": [{**GAME, "upstream_port": 1}]})
    assert (
        stale[0].text
        == "port udp 27015: configured for gtr6:27015, not applied yet by the port agent"
    )


def test_the_module_names_its_verbs_on_a_wrong_call() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "homelab_tunnel.edge.port_agent", "stop"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert "check FILE|apply|watch|status" in done.stderr
