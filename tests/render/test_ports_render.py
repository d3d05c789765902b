"""The forwarded ports as the edge gets them: ports.json and the config object's port list."""

from __future__ import annotations

import json

from support.config import config_with

from homelab_tunnel.crawlers import ai_crawlers
from homelab_tunnel.edge.forwards import read_forwards
from homelab_tunnel.payload import edge_config_object
from homelab_tunnel.render.edge_config import edge_config_document
from homelab_tunnel.render.edge_env import render_health_env

PORTS = [
    {"protocol": "udp", "port": 27015, "upstream": "gtr6"},
    {"protocol": "udp", "port": "27020-27022", "upstream": "gtr6", "upstream_port": 37020},
    {"protocol": "tcp", "port": 2222, "upstream": "100.64.0.9", "upstream_port": 22},
]


def test_the_config_object_carries_each_port_as_data_and_as_the_agents_file() -> None:
    document = edge_config_document(config_with(ports=PORTS), ai_crawlers())
    assert document["ports"] == [
        {"protocol": "udp", "port": "27015", "upstream": "gtr6",
         "upstream_host": "gtr6.tail.example.net", "upstream_port": 27015},
        {"protocol": "udp", "port": "27020-27022", "upstream": "gtr6",
         "upstream_host": "gtr6.tail.example.net", "upstream_port": 37020},
        {"protocol": "tcp", "port": "2222", "upstream": "100.64.0.9",
         "upstream_host": "100.64.0.9", "upstream_port": 22},
    ]  # fmt: skip
    assert json.loads(document["files"]["ports.json"]) == document["ports"]
    # One port a line, so a plan's diff of the object shows which one changed.
    assert len(document["files"]["ports.json"].splitlines()) == len(PORTS) + 2


def test_the_port_agent_reads_what_render_writes() -> None:
    text = edge_config_document(config_with(ports=PORTS), ai_crawlers())["files"]["ports.json"]
    forwards = read_forwards(text)
    assert [(f.label, f.upstream_host, f.upstream_port) for f in forwards] == [
        ("udp 27015", "gtr6.tail.example.net", 27015),
        ("udp 27020-27022", "gtr6.tail.example.net", 37020),
        ("tcp 2222", "100.64.0.9", 22),
    ]
    assert forwards[2].upstream_address == "100.64.0.9"
    assert forwards[0].upstream_address is None


def test_no_ports_is_an_empty_list_the_agent_reads() -> None:
    text = edge_config_document(config_with(), ai_crawlers())["files"]["ports.json"]
    assert text == "[]\n"
    assert read_forwards(text) == []


def test_a_port_changes_the_config_version() -> None:
    with_ports = edge_config_object(config_with(ports=PORTS)).version
    assert with_ports != edge_config_object(config_with()).version


def test_the_health_agent_checks_the_ports_upstreams_too() -> None:
    env = render_health_env(config_with(ports=PORTS))
    assert "HEALTH_UPSTREAMS=homelab.tail.example.net gtr6.tail.example.net 100.64.0.9\n" in env
