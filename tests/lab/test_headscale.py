"""Scenario 1: Headscale 0.29.2 on the rendered config and policy, reachable only on loopback."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from support.lab.addresses import RESERVED_IP
from support.lab.lab import Lab
from support.lab.probes import probe

# Headscale's HTTP API and /health, its metrics, its gRPC; Caddy's admin API.
PRIVATE_PORTS = ("8080", "9090", "50443", "2019")


def test_the_edge_runs_the_rendered_files_byte_for_byte(lab: Lab) -> None:
    deployed = {
        "caddyfile": "/etc/caddy/Caddyfile",
        "headscale": "/etc/headscale/config.yaml",
        "policy": "/etc/headscale/policy.hujson",
    }
    with ThreadPoolExecutor(len(deployed)) as pool:
        rendered = dict(
            zip(
                deployed,
                pool.map(
                    lambda name: lab.cli("render", name, "--config", str(lab.config_path)).stdout,
                    deployed,
                ),
                strict=True,
            )
        )
    for name, path in deployed.items():
        assert lab.edge.box.path(path).read_text() == rendered[name], path


def test_headscale_configtest_accepts_the_rendered_config_and_policy(lab: Lab) -> None:
    done = lab.edge.headscale("configtest", check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_headscale_serves_health_on_loopback(lab: Lab) -> None:
    done = lab.edge.box.run(["curl", "-sS", "-i", "http://127.0.0.1:8080/health"])
    assert done.stdout.startswith("HTTP/1.1 200")
    assert '"status":"pass"' in done.stdout.replace(" ", "")


def test_headscale_listens_on_loopback_only(lab: Lab) -> None:
    listeners = lab.edge.box.run(["ss", "-Hltnp"]).stdout.splitlines()
    headscale = sorted(line.split()[3] for line in listeners if '"headscale"' in line)
    assert headscale == ["127.0.0.1:8080", "127.0.0.1:9090"]


def test_nothing_of_headscale_grpc_or_metrics_is_reachable_from_the_visitor(lab: Lab) -> None:
    """The cloud firewall drops them (no answer, as on DigitalOcean) before the droplet's
    loopback-only listeners would refuse them."""
    for address in (RESERVED_IP, lab.edge.droplet.own):
        seen = probe(lab.visitor, "tcp", address, *PRIVATE_PORTS, "443")
        kinds = {port: answer.split(" (")[0] for port, answer in seen.items()}
        assert kinds == {**dict.fromkeys(PRIVATE_PORTS, "no answer"), "443": "open"}, address


def test_negative_twin_without_the_cloud_firewall_the_droplet_refuses_them(lab: Lab) -> None:
    """What stays when the firewall is gone: nothing listens there on a public address."""
    lab.cloud.remove_firewall()
    try:
        seen = probe(lab.visitor, "tcp", lab.edge.droplet.own, *PRIVATE_PORTS)
    finally:
        lab.apply_firewall()
    assert seen == dict.fromkeys(PRIVATE_PORTS, "refused")
