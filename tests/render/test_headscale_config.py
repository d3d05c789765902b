"""The rendered Headscale config and ACL policy, against Headscale 0.29.2's own rules."""

from __future__ import annotations

import ipaddress
import json
import re
from typing import Any

import yaml
from support.config import DATA, config_with

from homelab_tunnel.edge.versions import HEADSCALE_VERSION
from homelab_tunnel.render.headscale import render_headscale_config
from homelab_tunnel.render.policy import render_policy

# The upstream example of exactly the pinned release: moving the pin needs a new copy.
EXAMPLE = DATA / "headscale" / f"config-example-{HEADSCALE_VERSION}.yaml"
# Keys Headscale 0.26-0.29 refuse to start with (hscontrol/types/config.go).
REMOVED_KEYS = {
    "randomize_client_port",
    "oidc.expiry",
    "oidc.strip_email_domain",
    "oidc.map_legacy_users",
    "ephemeral_node_inactivity_timeout",
    "acl_policy_path",
    "dns_config",
    "dns.use_username_in_magic_dns",
}


def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict) and node:
        flat: dict[str, Any] = {}
        for key, value in node.items():
            flat.update(_flatten(value, f"{prefix}{key}."))
        return flat
    return {prefix.rstrip("."): node}


def _rendered(**changes: Any) -> dict[str, Any]:
    return dict(yaml.safe_load(render_headscale_config(config_with(**changes))))


def test_reference_example_is_of_the_pinned_release() -> None:
    assert EXAMPLE.is_file(), (
        f"copy config-example.yaml of Headscale {HEADSCALE_VERSION} to {EXAMPLE}"
    )


def test_every_key_exists_in_the_upstream_example() -> None:
    upstream = set(_flatten(yaml.safe_load(EXAMPLE.read_text())))
    rendered = set(_flatten(_rendered()))
    # Keys with an empty mapping flatten to the mapping's own name.
    upstream |= {key.rsplit(".", 1)[0] for key in upstream}
    assert rendered - upstream == set()


def test_no_removed_key_that_would_stop_headscale() -> None:
    rendered = set(_flatten(_rendered()))
    clashes = {
        key
        for key in rendered
        for removed in REMOVED_KEYS
        if key == removed or key.startswith(removed + ".")
    }
    assert clashes == set()


def test_required_keys_are_set() -> None:
    flat = _flatten(_rendered())
    for key in ("server_url", "noise.private_key_path", "database.type", "database.sqlite.path",
                "prefixes.v4", "dns.base_domain", "derp.server.stun_listen_addr"):  # fmt: skip
        assert flat.get(key), key
    assert flat["database.type"] == "sqlite"


def test_server_url_is_the_headscale_domain_outside_the_base_domain() -> None:
    config = _rendered()
    assert config["server_url"] == "https://headscale.example.com"
    host = config["server_url"].removeprefix("https://")
    base = config["dns"]["base_domain"]
    assert host != base and not host.endswith("." + base)


def test_everything_listens_on_loopback_only() -> None:
    config = _rendered()
    for key in ("listen_addr", "metrics_listen_addr", "grpc_listen_addr"):
        assert config[key].startswith("127.0.0.1:"), key
    assert config["grpc_allow_insecure"] is False


def test_only_local_caddy_is_a_trusted_proxy() -> None:
    proxies = _rendered()["trusted_proxies"]
    assert proxies == ["127.0.0.1/32", "::1/128"]
    assert all(ipaddress.ip_network(p).prefixlen > 0 for p in proxies)


def test_embedded_derp_with_stun_and_no_public_relays_by_default() -> None:
    derp = _rendered()["derp"]
    assert derp["server"]["enabled"] is True
    assert derp["server"]["stun_listen_addr"].endswith(":3478")
    assert derp["server"]["verify_clients"] is True
    assert derp["urls"] == []
    # The droplet's own addresses come from the environment at boot, never the file.
    assert "ipv4" not in derp["server"] and "ipv6" not in derp["server"]


def test_public_derp_maps_are_opt_in() -> None:
    url = "https://controlplane.tailscale.com/derpmap/default"
    assert _rendered(headscale={"derp_urls": [url]})["derp"]["urls"] == [url]


def test_state_lives_on_the_volume_paths() -> None:
    flat = _flatten(_rendered())
    for key in ("noise.private_key_path", "derp.server.private_key_path", "database.sqlite.path"):
        assert flat[key].startswith("/var/lib/headscale/"), key
    assert flat["policy.path"] == "/etc/headscale/policy.hujson"


def test_magicdns_uses_the_configured_base_domain_without_touching_client_dns() -> None:
    dns = _rendered(headscale={"base_domain": "ts.example.net"})["dns"]
    assert dns["magic_dns"] is True
    assert dns["base_domain"] == "ts.example.net"
    assert dns["override_local_dns"] is False  # so nameservers.global may stay empty


def _policy(**changes: Any) -> dict[str, Any]:
    text = render_policy(config_with(**changes))
    return dict(json.loads(re.sub(r"^//.*$", "", text, flags=re.M)))


def test_policy_lets_the_edge_reach_exactly_the_site_upstreams_over_tcp() -> None:
    assert _policy()["acls"] == [
        {"action": "accept", "src": ["edge@"], "proto": "tcp", "dst": ["homelab@:2342,8080"]}
    ]


def test_policy_lets_the_edge_reach_each_forwarded_port_over_its_own_protocol() -> None:
    ports = [
        {"protocol": "udp", "port": 27015, "upstream": "gtr6"},
        {"protocol": "udp", "port": "27020-27030", "upstream": "gtr6", "upstream_port": 37020},
        {"protocol": "tcp", "port": 25565, "upstream": "gtr6"},
        {"protocol": "tcp", "port": 2222, "upstream": "homelab", "upstream_port": 22},
        {"protocol": "udp", "port": 51820, "upstream": "100.64.0.9"},
    ]
    assert _policy(ports=ports)["acls"] == [
        {
            "action": "accept",
            "src": ["edge@"],
            "proto": "tcp",
            "dst": ["gtr6@:25565", "homelab@:22,2342,8080"],
        },
        {
            "action": "accept",
            "src": ["edge@"],
            "proto": "udp",
            # The upstream's ports: a range keeps its length, moved to upstream_port.
            "dst": ["100.64.0.9:51820", "gtr6@:27015,37020-37030"],
        },
    ]


def test_negative_twin_without_udp_ports_there_is_no_udp_rule() -> None:
    ports = [{"protocol": "tcp", "port": 25565, "upstream": "gtr6"}]
    assert [rule["proto"] for rule in _policy(ports=ports)["acls"]] == ["tcp"]


def test_policy_separates_machines_and_addresses() -> None:
    sites = [
        {"domain": "a.example.com", "upstream": "nas", "port": 5000},
        {"domain": "b.example.com", "upstream": "homelab", "port": 80},
        {"domain": "c.example.com", "upstream": "100.64.0.9", "port": 3000},
        {"domain": "d.example.com", "upstream": "nas", "port": 5000},
    ]
    dst = _policy(sites=sites)["acls"][0]["dst"]
    assert dst == ["100.64.0.9:3000", "homelab@:80", "nas@:5000"]


def test_policy_lets_the_edge_reach_each_sites_forward_auth_server() -> None:
    forward = {"forward": {"upstream": "auth", "port": 9091, "path": "/api/authz/forward-auth"}}
    sites = [
        {"domain": "a.example.com", "upstream": "homelab", "port": 80, "auth": forward},
        {"domain": "b.example.com", "upstream": "nas", "port": 5000},
        {"domain": "c.example.com", "upstream": "homelab", "port": 81, "auth": forward},
    ]
    config = config_with(sites=sites)
    assert _policy(sites=sites)["acls"][0]["dst"] == ["auth@:9091", "homelab@:80,81", "nas@:5000"]
    # ... and it is a machine like the others: joined, and watched by the health agent.
    assert config.upstream_machines == ["homelab", "nas", "auth"]
    assert config.upstream_hosts[-1] == "auth.tail.example.net"


def test_policy_opens_the_metrics_port_to_the_scrapers_and_nothing_more() -> None:
    acls = _policy(metrics={"scrapers": ["monitor", "100.64.0.9"], "port": 9200})["acls"]
    assert acls[1:] == [
        {
            "action": "accept",
            "src": ["monitor@", "100.64.0.9"],
            "proto": "tcp",
            "dst": ["edge@:9200"],
        }
    ]


def test_negative_twin_no_scrapers_no_rule_to_the_edge() -> None:
    assert len(_policy(metrics={"port": 9200})["acls"]) == 1


def test_header_names_the_configured_version() -> None:
    text = render_headscale_config(config_with(headscale={"version": "0.28.0"}))
    assert text.startswith("# Headscale 0.28.0 on the homelab-edge edge")
