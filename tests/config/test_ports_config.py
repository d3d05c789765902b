"""`[[ports]]`: what a forwarded port may be, refused one line each with exit 2, and its twins."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support.config import raw_with, write_config
from typer.testing import CliRunner

from homelab_tunnel.cli import app
from homelab_tunnel.config import parse_config
from homelab_tunnel.config.ports import EDGE_FIREWALL_RULES, FIREWALL_RULE_LIMIT

runner = CliRunner()
GAME = {"protocol": "udp", "port": 27015, "upstream": "gtr6"}


def _check(tmp_path: Path, ports: list[dict[str, Any]], **more: Any) -> tuple[int, list[str]]:
    path = write_config(tmp_path, raw_with(ports=ports, **more))
    result = runner.invoke(app, ["check", "--config", str(path)])
    assert "Traceback" not in result.output
    prefix = f"{path}: "
    return result.exit_code, [line.removeprefix(prefix) for line in result.stderr.splitlines()]


def test_a_port_a_range_and_a_moved_port_are_accepted(tmp_path: Path) -> None:
    ports = [
        GAME,
        {"protocol": "udp", "port": "27020-27030", "upstream": "gtr6", "upstream_port": 37020},
        {"protocol": "tcp", "port": 2222, "upstream": "homelab", "upstream_port": 22},
        {"protocol": "tcp", "port": 27015, "upstream": "100.64.0.9"},  # TCP and UDP apart
    ]
    code, lines = _check(tmp_path, ports)
    assert (code, lines) == (0, [])
    config = parse_config(raw_with(ports=ports), "test")
    assert [(p.port, p.upstream_first, p.upstream_last) for p in config.ports] == [
        ("27015", 27015, 27015),
        ("27020-27030", 37020, 37030),
        ("2222", 22, 22),
        ("27015", 27015, 27015),
    ]


@pytest.mark.parametrize(
    ("port", "expected"),
    [
        ({"protocol": "tcp", "port": 443}, "ports.0.port: tcp 443 is the edge's own (HTTPS"),
        ({"protocol": "tcp", "port": 80}, "ports.0.port: tcp 80 is the edge's own (HTTP"),
        ({"protocol": "udp", "port": 443}, "ports.0.port: udp 443 is the edge's own (HTTP/3)"),
        ({"protocol": "udp", "port": 41641}, "udp 41641 is the edge's own (Tailscale direct"),
        (
            {"protocol": "udp", "port": "3000-4000"},
            "ports.0.port: udp 3000-4000 includes udp 3478, the edge's own (STUN",
        ),
        ({"protocol": "udp", "port": 53}, "udp 53 is never forwarded to the internet: DNS"),
        ({"protocol": "tcp", "port": 445}, "tcp 445 is never forwarded to the internet: SMB"),
        ({"protocol": "tcp", "port": 2375}, "tcp 2375 is never forwarded to the internet"),
        ({"protocol": "udp", "port": "100-115"}, "udp 100-115 includes udp 111, never forwarded"),
        ({"protocol": "tcp", "port": "27015"}, "ports.0.port: '27015': write a single port"),
        ({"protocol": "tcp", "port": "27020-27015"}, "'27020-27015' is not a port range"),
        ({"protocol": "tcp", "port": "27015-27015"}, "is not a port range"),
        ({"protocol": "tcp", "port": 0}, "ports.0.port: 0 is not a port"),
        ({"protocol": "tcp", "port": 70000}, "70000 is not a port"),
        ({"protocol": "tcp", "port": True}, "ports.0.port: must be a port number"),
        ({"protocol": "sctp", "port": 9}, "ports.0.protocol: Input should be 'tcp' or 'udp'"),
        ({"protocol": "udp", "port": 9, "upstream": "1x"}, "ports.0.upstream: '1x': the machine"),
        (
            {"protocol": "udp", "port": 9, "upstream": "homelab-edge"},
            "ports.0.upstream: 'homelab-edge' is the edge itself",
        ),
        (
            {"protocol": "udp", "port": 9, "upstream": "203.0.113.9"},
            "ports.0.upstream: '203.0.113.9' is not a tailnet address",
        ),
        (
            {"protocol": "udp", "port": "60000-65535", "upstream_port": 65000},
            "ports.0.upstream_port: 60000-65535 is 5536 ports, so the upstream's would run "
            "from 65000 to 70535, past 65535",
        ),
    ],
)
def test_a_bad_port_is_refused_on_one_line(
    tmp_path: Path, port: dict[str, Any], expected: str
) -> None:
    code, lines = _check(tmp_path, [{"upstream": "gtr6", **port}])
    assert code == 2
    assert len([line for line in lines if line.startswith("ports.")]) == 1, lines
    assert any(expected in line for line in lines), lines


def test_ssh_is_refused_only_while_the_edge_keeps_it_open(tmp_path: Path) -> None:
    jump = [{"protocol": "tcp", "port": 22, "upstream": "homelab"}]
    code, lines = _check(tmp_path, jump, ssh_allowed_cidrs=["203.0.113.7/32"])
    assert code == 2
    assert lines == [
        "ports.0.port: tcp 22 is the edge's own (SSH, open to ssh_allowed_cidrs); pick another "
        "public port (upstream_port can still be the service's own)"
    ]
    assert _check(tmp_path, jump) == (0, [])  # SSH closed: 22 may go to a jump host


def test_duplicates_and_overlaps_name_the_earlier_entry(tmp_path: Path) -> None:
    ports = [
        {"protocol": "udp", "port": "27015-27020", "upstream": "gtr6"},
        {"protocol": "udp", "port": 27018, "upstream": "homelab"},
        {"protocol": "udp", "port": "27015-27020", "upstream": "gtr6"},
        {"protocol": "tcp", "port": 27018, "upstream": "homelab"},  # another protocol: fine
    ]
    code, lines = _check(tmp_path, ports)
    assert code == 2
    assert lines == [
        "ports.1.port: udp 27018 overlaps ports.0 (udp 27015-27020); each public port once",
        "ports.2.port: udp 27015-27020 repeats ports.0 (udp 27015-27020); each public port once",
        "ports.2.port: udp 27015-27020 overlaps ports.1 (udp 27018); each public port once",
    ]


def test_more_ports_than_the_firewall_holds_are_refused(tmp_path: Path) -> None:
    room = FIREWALL_RULE_LIMIT - EDGE_FIREWALL_RULES
    many = [{"protocol": "udp", "port": 30000 + n, "upstream": "gtr6"} for n in range(room + 1)]
    code, lines = _check(tmp_path, many)
    assert code == 2
    assert lines == [
        f"ports: {room + 1} entries need {room + 1} firewall rules beside the edge's "
        f"{EDGE_FIREWALL_RULES}, over DigitalOcean's limit of 50 rules per firewall; forward "
        'neighbouring ports as one range ("27015-27030")'
    ]
    assert _check(tmp_path, many[:room]) == (0, [])


def test_a_ports_upstream_is_a_machine_the_edge_reaches_and_joins(tmp_path: Path) -> None:
    config = parse_config(raw_with(ports=[GAME]), "test")
    assert config.upstream_machines == ["homelab", "gtr6"]  # a Headscale user for gtr6 too
    assert config.upstream_hosts == ["homelab.tail.example.net", "gtr6.tail.example.net"]
