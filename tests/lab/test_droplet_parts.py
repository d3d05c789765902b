"""The droplet box's parts that need no boot: the firewall read from the synthesized stack,
the metadata service's answers, the seed, and the rootfs cache key."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
import yaml
from support.droplet import metadata_server
from support.droplet.firewall import Firewall, FirewallError, Rule, from_stack, ruleset
from support.droplet.metadata import Facts, record
from support.droplet.rootfs import DropletUnavailable, build_rootfs, packages, rootfs
from support.droplet.seed import FSCK_UNIT, SEED, fsck_without_device, nocloud_seed
from support.lab.addresses import droplet

from homelab_tunnel.infra.constructs.firewall import PUBLIC_INBOUND

ANYWHERE = ("0.0.0.0/0", "::/0")


# -- the cloud firewall --------------------------------------------------------


def test_the_firewall_is_the_stacks_public_ports_and_nothing_else(stack: dict[str, Any]) -> None:
    firewall = from_stack(stack)
    expected = [
        Rule(protocol, None if ports is None else (int(ports), int(ports)), ANYWHERE)
        for protocol, ports, _why in PUBLIC_INBOUND
    ]
    assert list(firewall.inbound) == expected, "the example config opens no SSH"
    assert [rule.protocol for rule in firewall.outbound] == ["tcp", "udp", "icmp"]
    assert all(rule.ports is None and rule.networks == ANYWHERE for rule in firewall.outbound)


def test_the_firewall_drops_whatever_no_rule_accepts(stack: dict[str, Any]) -> None:
    text = ruleset(from_stack(stack), "edge0")
    inbound = text.split("chain inbound {")[1].split("}")[0].strip().splitlines()
    assert inbound[0].strip() == "ct state established,related accept", "stateful"
    assert inbound[-1].strip() == "counter name inbound_dropped drop", "drop, never reject"
    assert "reject" not in text
    accepted = [line.strip() for line in inbound[1:-1]]
    assert "meta nfproto ipv4 udp dport 41641 accept" in accepted
    assert "meta nfproto ipv6 udp dport 41641 accept" in accepted
    assert len(accepted) == 2 * len(PUBLIC_INBOUND), "one match per rule and address family"


def test_an_ssh_allowlist_becomes_a_source_match() -> None:
    rule = Rule("tcp", (22, 22), ("203.0.113.82/32", "2001:db8::/64"))
    text = ruleset(Firewall("edge", (rule,), ()), "edge0")
    assert "ip saddr { 203.0.113.82/32 } tcp dport 22 accept" in text
    assert "ip6 saddr { 2001:db8::/64 } tcp dport 22 accept" in text


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"protocol": "tcp", "port_range": "22", "source_tags": ["ops"]}, "cannot model"),
        ({"protocol": "tcp", "port_range": "22", "source_addresses": ["${var.ip}"]}, "not an"),
        ({"protocol": "icmp", "port_range": "1", "source_addresses": ["0.0.0.0/0"]}, "no ports"),
        ({"protocol": "tcp", "port_range": "0-70000", "source_addresses": ["::/0"]}, "range"),
        ({"protocol": "tcp", "source_addresses": ["::/0"]}, "required for tcp"),
        ({"protocol": "gre", "source_addresses": ["::/0"]}, "not one of"),
        ({"protocol": "tcp", "port_range": "22", "source_addresses": []}, "empty"),
    ],
)
def test_a_rule_the_box_cannot_enforce_is_refused_not_skipped(
    rule: dict[str, Any], message: str
) -> None:
    stack = {"resource": {"digitalocean_firewall": {"edge": {"inbound_rule": [rule]}}}}
    with pytest.raises(FirewallError, match=message) as refused:
        from_stack(stack)
    assert "edge.inbound_rule[0]" in str(refused.value)


# -- the metadata service ------------------------------------------------------

USER_DATA = b"#cloud-config\n# caf\xc3\xa9\n"


def _record(active_from: float | None) -> dict[str, Any]:
    facts = Facts(
        droplet_id=500000001,
        hostname="homelab-edge",
        region="fra1",
        addresses=droplet(1),
        mac="02:00:00:00:00:01",
        user_data=USER_DATA,
        public_keys=("ssh-ed25519 AAAA operator",),
        tags=("edge",),
    )
    return json.loads(json.dumps(record(facts, "192.0.2.10", active_from)))


def test_metadata_paths_answer_as_digitalocean_names_them() -> None:
    answers = _record(active_from=0)
    assert metadata_server.answer(answers, "/metadata/v1/id", 1) == b"500000001"
    assert metadata_server.answer(answers, "/metadata/v1/user-data", 1) == USER_DATA
    public = "/metadata/v1/interfaces/public/0"
    assert metadata_server.answer(answers, f"{public}/ipv4/address", 1) == b"203.0.113.2"
    assert metadata_server.answer(answers, f"{public}/ipv4/netmask", 1) == b"255.255.255.240"
    assert metadata_server.answer(answers, f"{public}/anchor_ipv4/gateway", 1) == b"198.51.100.1"
    assert metadata_server.answer(answers, f"{public}/ipv6/address", 1) is None
    listing = (metadata_server.answer(answers, "/metadata/v1/", 1) or b"").decode().split("\n")
    assert {"id", "user-data", "interfaces/", "reserved_ip/", "tags/"} <= set(listing)
    assert metadata_server.answer(answers, "/metadata/v1/tags/", 1) == b"edge"


def test_the_reserved_ip_is_active_only_from_its_time() -> None:
    answers = _record(active_from=100.0)
    active = "/metadata/v1/reserved_ip/ipv4/active"
    assert metadata_server.answer(answers, active, 99.9) == b"false"
    assert metadata_server.answer(answers, "/metadata/v1/reserved_ip/ipv4/ip_address", 99.9) is None
    assert metadata_server.answer(answers, active, 100.0) == b"true"
    address = metadata_server.answer(answers, "/metadata/v1/floating_ip/ipv4/ip_address", 100.0)
    assert address == b"192.0.2.10"
    assert metadata_server.answer(_record(None), active, 1e12) == b"false"


def test_v1_json_has_the_fields_cloud_inits_digitalocean_datasource_reads() -> None:
    """sources/DataSourceDigitalOcean.py:88-94 and helpers/digitalocean.py's interfaces."""
    whole = json.loads(metadata_server.answer(_record(0), "/metadata/v1.json", 1) or b"")
    assert whole["droplet_id"] == 500000001
    assert (whole["hostname"], whole["region"]) == ("homelab-edge", "fra1")
    assert whole["public_keys"] == ["ssh-ed25519 AAAA operator"]
    assert whole["user_data"].encode() == USER_DATA
    public = whole["interfaces"]["public"][0]
    assert public["anchor_ipv4"] == {
        "ip_address": "198.51.100.2",
        "netmask": "255.255.255.240",
        "gateway": "198.51.100.1",
    }
    assert whole["reserved_ip"]["ipv4"] == {"active": True, "ip_address": "192.0.2.10"}


# -- the seed and the image ----------------------------------------------------


def test_the_seed_carries_user_data_untouched_and_keys_as_metadata() -> None:
    seed = nocloud_seed(
        instance_id="500000001", hostname="edge", user_data=USER_DATA, public_keys=["k1"]
    )
    assert seed[f"{SEED}/user-data"] == USER_DATA
    assert seed[f"{SEED}/vendor-data"] == b""
    meta = yaml.safe_load(seed[f"{SEED}/meta-data"])
    assert meta == {"instance-id": "500000001", "local-hostname": "edge", "public-keys": ["k1"]}


def test_fsck_keeps_its_check_and_loses_only_the_device_binding() -> None:
    try:
        unit = (rootfs() / FSCK_UNIT.lstrip("/")).read_text()
    except DropletUnavailable as exc:
        pytest.skip(f"droplet box: {exc}")
    changed = fsck_without_device(unit)
    assert "%i.device" not in changed
    assert "ExecStart=/usr/lib/systemd/systemd-fsck %f" in changed
    assert len(unit.splitlines()) - len(changed.splitlines()) == 1


def test_negative_twin_a_unit_without_the_binding_is_not_silently_passed() -> None:
    with pytest.raises(ValueError, match="revisit the box"):
        fsck_without_device("[Unit]\nAfter=local-fs-pre.target\n")


def test_the_image_is_debian_13_as_the_issue_asks() -> None:
    try:
        rootfs()
    except DropletUnavailable as exc:
        pytest.skip(f"droplet box: {exc}")
    versions = packages()
    assert versions["systemd"].startswith("257.")
    assert versions["cloud-init"].startswith("25.")
    assert versions["python3"].startswith("3.13.")
    assert {"openssh-server", "nftables", "e2fsprogs", "gpg", "curl"} <= set(versions)


def test_the_rootfs_cache_key_follows_the_package_list_not_its_order() -> None:
    spec = build_rootfs.spec()
    shuffled = dataclasses.replace(spec, packages=tuple(reversed(spec.packages)))
    more = dataclasses.replace(spec, packages=(*spec.packages, "less"))
    hooked = dataclasses.replace(spec, customize=spec.customize[:-1])
    assert shuffled.folder == spec.folder
    assert len({spec.folder, more.folder, hooked.folder}) == 3
