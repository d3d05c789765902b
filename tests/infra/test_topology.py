"""What the synthesized Terraform JSON must say about the edge's shape."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from support.config import resources
from support.shapes import BY_NAME, PORTS, Synth

from homelab_tunnel.config import TunnelConfig
from homelab_tunnel.config.ports import EDGE_FIREWALL_RULES, EDGE_PORTS
from homelab_tunnel.infra.terraform_literal import terraform_literal
from homelab_tunnel.payload import edge_config_object, software
from homelab_tunnel.payload import user_data as render_user_data
from homelab_tunnel.render.secrets import (
    BACKUP_ACCESS_KEY,
    BACKUP_SECRET_KEY,
    CHANNEL_ACCESS_KEY,
    CHANNEL_SECRET_KEY,
    EDGE_SECRET,
)

RESERVED_IP = "${digitalocean_reserved_ip.edge.ip_address}"
RESERVED_IPV6 = "${digitalocean_reserved_ipv6.edge.ip}"
DROPLET_ID = "${digitalocean_droplet.edge.id}"
ANYWHERE = ["0.0.0.0/0", "::/0"]


def _rules(firewall: dict[str, Any], kind: str) -> set[tuple[str, str, tuple[str, ...]]]:
    return {
        (rule["protocol"], rule.get("port_range", ""), tuple(rule["source_addresses"]))
        if kind == "inbound_rule"
        else (rule["protocol"], rule.get("port_range", ""), tuple(rule["destination_addresses"]))
        for rule in firewall[kind]
    }


def test_resource_addresses_are_pinned(stack: dict[str, Any]) -> None:
    # Renaming any of these replaces the real resource: change them only on purpose.
    addresses = {
        f"{kind}.{name}" for kind, items in stack["resource"].items() for name in items
    } | {f"data.{kind}.{name}" for kind, items in stack["data"].items() for name in items}
    assert addresses == {
        "digitalocean_droplet.edge",
        "digitalocean_volume.state",
        "digitalocean_spaces_bucket.backup",
        "digitalocean_spaces_key.backup",
        "digitalocean_spaces_bucket.config",
        "digitalocean_spaces_key.config",
        "digitalocean_spaces_key.edge_secret",
        "digitalocean_spaces_bucket_object.config",
        "digitalocean_spaces_bucket_object.software",
        "digitalocean_reserved_ip.edge",
        "digitalocean_reserved_ip_assignment.edge",
        "digitalocean_firewall.edge",
        "digitalocean_record.a_blog",
        "digitalocean_record.caa_blog",
        "digitalocean_record.a_photos",
        "digitalocean_record.caa_photos",
        "digitalocean_record.a_headscale",
        "digitalocean_record.caa_headscale",
        "digitalocean_project.edge",
        "digitalocean_monitor_alert.cpu",
        "digitalocean_monitor_alert.memory",
        "digitalocean_monitor_alert.disk",
        "data.digitalocean_domain.zone",
        "data.digitalocean_ssh_key.key_0",
    }


def test_inbound_rules_are_exactly_the_public_ports(stack: dict[str, Any]) -> None:
    firewall = resources(stack, "digitalocean_firewall")["edge"]
    assert _rules(firewall, "inbound_rule") == {
        ("tcp", "80", tuple(ANYWHERE)),
        ("tcp", "443", tuple(ANYWHERE)),
        ("udp", "443", tuple(ANYWHERE)),
        ("udp", "41641", tuple(ANYWHERE)),
        ("udp", "3478", tuple(ANYWHERE)),
        ("icmp", "", tuple(ANYWHERE)),
    }


def test_ssh_is_closed_by_default(stack: dict[str, Any]) -> None:
    firewall = resources(stack, "digitalocean_firewall")["edge"]
    assert not [rule for rule in firewall["inbound_rule"] if rule.get("port_range") == "22"]


def test_ssh_is_open_only_to_the_allowlist(full_stack: dict[str, Any]) -> None:
    firewall = resources(full_stack, "digitalocean_firewall")["edge"]
    ssh = [rule for rule in firewall["inbound_rule"] if rule.get("port_range") == "22"]
    assert ssh == [
        {
            "protocol": "tcp",
            "port_range": "22",
            "source_addresses": ["203.0.113.7/32", "2001:db8::/64"],
        }
    ]


def test_forwarded_ports_are_open_exactly_and_only_to_ipv4(full_stack: dict[str, Any]) -> None:
    firewall = resources(full_stack, "digitalocean_firewall")["edge"]
    public = {(protocol, str(port)) for protocol, port, _ in EDGE_PORTS} | {("tcp", "22")}
    forwarded = _rules(firewall, "inbound_rule") - {
        rule for rule in _rules(firewall, "inbound_rule") if rule[:2] in public or rule[0] == "icmp"
    }
    # The public port, never the upstream's (2222, not 22); the edge forwards IPv4 only.
    assert forwarded == {
        ("udp", "27015", ("0.0.0.0/0",)),
        ("udp", "2456-2457", ("0.0.0.0/0",)),
        ("tcp", "2222", ("0.0.0.0/0",)),
    }


def test_the_firewall_holds_the_rules_the_config_counts(full_stack: dict[str, Any]) -> None:
    # config/ports.py refuses a [[ports]] list past DigitalOcean's 50 rules from this count.
    firewall = resources(full_stack, "digitalocean_firewall")["edge"]
    rules = len(firewall["inbound_rule"]) + len(firewall["outbound_rule"])
    assert rules == EDGE_FIREWALL_RULES + 1 + len(PORTS)  # + SSH


def test_outbound_is_open_for_updates_and_the_tailnet(stack: dict[str, Any]) -> None:
    firewall = resources(stack, "digitalocean_firewall")["edge"]
    assert _rules(firewall, "outbound_rule") == {
        ("tcp", "1-65535", tuple(ANYWHERE)),
        ("udp", "1-65535", tuple(ANYWHERE)),
        ("icmp", "", tuple(ANYWHERE)),
    }


def test_firewall_is_bound_to_the_droplet(stack: dict[str, Any]) -> None:
    firewall = resources(stack, "digitalocean_firewall")["edge"]
    assert firewall["droplet_ids"] == [DROPLET_ID]


def test_every_name_resolves_to_the_reserved_ip(
    stack: dict[str, Any], example_config: TunnelConfig
) -> None:
    records = resources(stack, "digitalocean_record").values()
    a_records = {record["name"]: record["value"] for record in records if record["type"] == "A"}
    assert a_records == {
        example_config.record_name(domain): RESERVED_IP for domain in example_config.domains
    }
    assert not any("digitalocean_droplet" in str(record) for record in records)


def test_every_name_allows_only_lets_encrypt(
    stack: dict[str, Any], example_config: TunnelConfig
) -> None:
    caa = [r for r in resources(stack, "digitalocean_record").values() if r["type"] == "CAA"]
    assert sorted(r["name"] for r in caa) == sorted(
        example_config.record_name(d) for d in example_config.domains
    )
    assert {(r["tag"], r["flags"], r["value"]) for r in caa} == {("issue", 0, "letsencrypt.org.")}


def test_records_use_the_existing_zone_by_default(stack: dict[str, Any]) -> None:
    assert "digitalocean_domain" not in stack["resource"]
    assert stack["data"]["digitalocean_domain"]["zone"]["name"] == "example.com"
    domains = {r["domain"] for r in resources(stack, "digitalocean_record").values()}
    assert domains == {"${data.digitalocean_domain.zone.name}"}


def test_created_zone_holds_the_records(full_stack: dict[str, Any]) -> None:
    assert resources(full_stack, "digitalocean_domain")["zone"]["name"] == "example.com"
    domains = {r["domain"] for r in resources(full_stack, "digitalocean_record").values()}
    assert domains == {"${digitalocean_domain.zone.name}"}


def test_aaaa_records_point_at_the_reserved_ipv6(full_stack: dict[str, Any]) -> None:
    records = resources(full_stack, "digitalocean_record").values()
    aaaa = {r["name"]: r["value"] for r in records if r["type"] == "AAAA"}
    assert aaaa == {"blog": RESERVED_IPV6, "photos": RESERVED_IPV6, "headscale": RESERVED_IPV6}
    assignment = resources(full_stack, "digitalocean_reserved_ipv6_assignment")["edge"]
    assert assignment == {**assignment, "ip": RESERVED_IPV6, "droplet_id": DROPLET_ID}


def test_no_aaaa_records_without_a_reserved_ipv6(stack: dict[str, Any]) -> None:
    records = resources(stack, "digitalocean_record").values()
    assert not [r for r in records if r["type"] == "AAAA"]
    assert "digitalocean_reserved_ipv6" not in stack["resource"]


def test_reserved_ip_is_assigned_to_this_droplet(stack: dict[str, Any]) -> None:
    reserved = resources(stack, "digitalocean_reserved_ip")["edge"]
    assert reserved["region"] == "fra1"
    assert "droplet_id" not in reserved  # assigned separately, so it survives replacement
    assignment = resources(stack, "digitalocean_reserved_ip_assignment")["edge"]
    assert assignment["ip_address"] == RESERVED_IP
    assert assignment["droplet_id"] == DROPLET_ID


def test_address_dns_and_config_exist_before_the_droplet(stack: dict[str, Any]) -> None:
    droplet = resources(stack, "digitalocean_droplet")["edge"]
    record_addresses = {
        f"digitalocean_record.{name}" for name in resources(stack, "digitalocean_record")
    }
    assert set(droplet["depends_on"]) == {
        "digitalocean_reserved_ip.edge",
        *record_addresses,
        "digitalocean_spaces_bucket_object.software",
        "digitalocean_spaces_bucket_object.config",
    }


def test_a_new_names_record_exists_before_the_config_that_serves_it(
    stack: dict[str, Any],
) -> None:
    config = resources(stack, "digitalocean_spaces_bucket_object")["config"]
    assert set(config["depends_on"]) == {
        f"digitalocean_record.{name}" for name in resources(stack, "digitalocean_record")
    }


def test_the_config_object_carries_the_rendered_config_and_its_mac(
    stack: dict[str, Any], example_config: TunnelConfig
) -> None:
    config = resources(stack, "digitalocean_spaces_bucket_object")["config"]
    assert config["content"] == terraform_literal(edge_config_object(example_config).body)
    assert config["key"] == "homelab-edge/edge-config.json"
    assert config["bucket"] == "${digitalocean_spaces_bucket.config.name}"
    assert config["acl"] == "private"
    assert config["metadata"]["webhook"] == "${var.health_webhook_url}"
    assert "digitalocean_spaces_key.edge_secret.secret_key" in config["metadata"]["mac"]


def test_the_software_object_is_named_by_its_hash(stack: dict[str, Any]) -> None:
    software_object = resources(stack, "digitalocean_spaces_bucket_object")["software"]
    data = software()
    assert base64.b64decode(software_object["content_base64"]) == data
    assert software_object["key"] == (
        f"homelab-edge/software/{hashlib.sha256(data).hexdigest()}.tar.bz2"
    )
    assert software_object["acl"] == "private"


def test_the_edge_reads_its_config_with_a_read_only_key(stack: dict[str, Any]) -> None:
    keys = resources(stack, "digitalocean_spaces_key")
    for name in ("config", "edge_secret"):
        assert keys[name]["grant"] == [
            {"bucket": "${digitalocean_spaces_bucket.config.name}", "permission": "read"}
        ]
    bucket = resources(stack, "digitalocean_spaces_bucket")["config"]
    assert bucket["acl"] == "private"
    assert bucket["name"] == "homelab-edge-config"
    assert bucket["region"] == "fra1"


def test_volume_is_attached_at_creation_and_protected(stack: dict[str, Any]) -> None:
    volume = resources(stack, "digitalocean_volume")["state"]
    assert volume["lifecycle"] == {"prevent_destroy": True}
    assert volume["name"] == "homelab-edge-state"
    assert volume["region"] == "fra1"
    droplet = resources(stack, "digitalocean_droplet")["edge"]
    assert droplet["volume_ids"] == ["${digitalocean_volume.state.id}"]


def test_droplet_settings(stack: dict[str, Any], example_config: TunnelConfig) -> None:
    droplet = resources(stack, "digitalocean_droplet")["edge"]
    assert droplet["image"] == "ubuntu-24-04-x64"
    assert droplet["size"] == "s-1vcpu-1gb"
    assert droplet["region"] == "fra1"
    assert droplet["ipv6"] is True
    assert droplet["monitoring"] is True
    assert droplet["graceful_shutdown"] is True
    assert set(droplet["tags"]) == {"homelab-tunnel", "homelab-edge"}


def test_droplet_runs_exactly_the_rendered_user_data(
    stack: dict[str, Any], example_config: TunnelConfig
) -> None:
    user_data = resources(stack, "digitalocean_droplet")["edge"]["user_data"]
    # The only interpolations: the keys, filled at plan time, all sensitive (the
    # backup pair twice: backup.env and litestream.yml).
    references = {
        CHANNEL_ACCESS_KEY.placeholder: ("${digitalocean_spaces_key.config.access_key}", 1),
        CHANNEL_SECRET_KEY.placeholder: ("${digitalocean_spaces_key.config.secret_key}", 1),
        EDGE_SECRET.placeholder: ("${digitalocean_spaces_key.edge_secret.secret_key}", 1),
        BACKUP_ACCESS_KEY.placeholder: ("${digitalocean_spaces_key.backup.access_key}", 2),
        BACKUP_SECRET_KEY.placeholder: ("${digitalocean_spaces_key.backup.secret_key}", 2),
    }
    expected = terraform_literal(render_user_data(example_config))
    for placeholder, (reference, count) in references.items():
        assert user_data.count(reference) == count
        expected = expected.replace(placeholder, reference)
    assert user_data == expected


def test_webhook_is_a_sensitive_variable_not_config(stack: dict[str, Any]) -> None:
    variable = stack["variable"]["health_webhook_url"]
    assert variable["sensitive"] is True
    assert variable["default"] == ""
    assert "var.health_webhook_url" in variable["validation"][0]["condition"]


def test_user_data_has_no_unescaped_terraform_templates() -> None:
    escaped = terraform_literal('echo "${HOME}" %{ if } $${x}')
    assert escaped == 'echo "$${HOME}" %%{ if } $$${x}'


def test_ssh_keys_by_name_and_by_fingerprint(
    stack: dict[str, Any], full_stack: dict[str, Any]
) -> None:
    by_name = resources(stack, "digitalocean_droplet")["edge"]["ssh_keys"]
    assert by_name == ["${data.digitalocean_ssh_key.key_0.fingerprint}"]
    assert stack["data"]["digitalocean_ssh_key"]["key_0"]["name"] == "homelab-admin"
    by_fingerprint = resources(full_stack, "digitalocean_droplet")["edge"]["ssh_keys"]
    assert by_fingerprint == ["3b:16:bf:e4:8b:00:8b:b8:59:8c:a9:d3:f0:19:45:fa"]
    assert "digitalocean_ssh_key" not in full_stack.get("data", {})


def test_project_groups_the_edge(stack: dict[str, Any], full_stack: dict[str, Any]) -> None:
    project = resources(stack, "digitalocean_project")["edge"]
    assert set(project["resources"]) == {
        "${digitalocean_droplet.edge.urn}",
        "${digitalocean_volume.state.urn}",
        "${digitalocean_reserved_ip.edge.urn}",
    }
    full = resources(full_stack, "digitalocean_project")["edge"]
    assert "${digitalocean_reserved_ipv6.edge.urn}" in full["resources"]
    assert "${digitalocean_domain.zone.urn}" in full["resources"]


def test_alerts_watch_the_droplet_and_mail_the_owner(stack: dict[str, Any]) -> None:
    alerts = resources(stack, "digitalocean_monitor_alert")
    assert {alert["type"] for alert in alerts.values()} == {
        "v1/insights/droplet/cpu",
        "v1/insights/droplet/memory_utilization_percent",
        "v1/insights/droplet/disk_utilization_percent",
    }
    for alert in alerts.values():
        assert alert["entities"] == [DROPLET_ID]
        assert alert["alerts"] == {"email": ["ops@example.com"]}


def test_no_alerts_without_an_email(full_stack: dict[str, Any]) -> None:
    assert "digitalocean_monitor_alert" not in full_stack["resource"]


def test_outputs(stack: dict[str, Any]) -> None:
    outputs = {name: body["value"] for name, body in stack["output"].items()}
    assert outputs["reserved_ip"] == RESERVED_IP
    assert outputs["site_urls"] == ["https://blog.example.com", "https://photos.example.com"]
    assert outputs["headscale_url"] == "https://headscale.example.com"
    assert outputs["ssh_command"] == f"ssh root@{RESERVED_IP}"
    assert outputs["droplet_ipv4"] == "${digitalocean_droplet.edge.ipv4_address}"


def test_spaces_backend_for_remote_state(full_stack: dict[str, Any]) -> None:
    s3 = full_stack["terraform"]["backend"]["s3"]
    assert s3["bucket"] == "homelab-state"
    assert s3["key"] == "edge/terraform.tfstate"
    assert s3["endpoints"] == {"s3": "https://fra1.digitaloceanspaces.com"}
    for flag in (
        "skip_credentials_validation",
        "skip_region_validation",
        "skip_requesting_account_id",
        "skip_metadata_api_check",
        "skip_s3_checksum",
        "use_lockfile",
    ):
        assert s3[flag] is True, flag
    assert "access_key" not in s3 and "secret_key" not in s3


def test_spaces_backend_addresses_the_bucket_by_host_name(full_stack: dict[str, Any]) -> None:
    # <bucket>.<region>.digitaloceanspaces.com: valid because bucket names have no dots.
    s3 = full_stack["terraform"]["backend"]["s3"]
    assert s3["region"] == "us-east-1"
    assert "use_path_style" not in s3 and "force_path_style" not in s3
    assert "endpoint" not in s3  # deprecated since Terraform 1.6; endpoints.s3 replaces it


def test_provider_is_pinned_and_tokenless(stack: dict[str, Any]) -> None:
    assert stack["terraform"]["required_providers"]["digitalocean"] == {
        "source": "digitalocean/digitalocean",
        "version": "2.71.0",
    }
    assert stack["provider"]["digitalocean"] == [{}]


def test_the_edges_spaces_key_reaches_the_backup_bucket_only(full_stack: dict[str, Any]) -> None:
    """Synth-time: one grant, readwrite, on the bucket this stack makes; never the state bucket."""
    key = resources(full_stack, "digitalocean_spaces_key")["backup"]
    assert key["grant"] == [
        {"bucket": "${digitalocean_spaces_bucket.backup.name}", "permission": "readwrite"}
    ]
    state_bucket = full_stack["terraform"]["backend"]["s3"]["bucket"]
    buckets = resources(full_stack, "digitalocean_spaces_bucket").values()
    assert state_bucket not in {bucket["name"] for bucket in buckets}
    assert state_bucket not in json.dumps(resources(full_stack, "digitalocean_spaces_key"))


def test_the_backup_key_reaches_the_edge_only_as_a_terraform_reference(
    stack: dict[str, Any],
) -> None:
    """Not in the config, not as a value in cdk.tf.json: Terraform fills it in at plan time."""
    user_data = resources(stack, "digitalocean_droplet")["edge"]["user_data"]
    assert "BACKUP_SECRET_ACCESS_KEY=${digitalocean_spaces_key.backup.secret_key}" in user_data
    assert "secret_key" not in json.dumps(resources(stack, "digitalocean_spaces_key"))


def test_the_edge_secret_is_a_key_of_its_own_that_can_only_read(stack: dict[str, Any]) -> None:
    """Not the bucket's key pair: its secret half alone goes to the edge, in a 0600 file."""
    key = resources(stack, "digitalocean_spaces_key")["edge_secret"]
    assert key["name"] == "homelab-edge-edge-secret"
    assert key["grant"] == [
        {"bucket": "${digitalocean_spaces_bucket.config.name}", "permission": "read"}
    ]
    user_data = resources(stack, "digitalocean_droplet")["edge"]["user_data"]
    assert "digitalocean_spaces_key.edge_secret.access_key" not in user_data
    entry = user_data[user_data.index("path: /etc/homelab-tunnel/edge-secret") :]
    assert entry.split("\n")[1:3] == [
        '    permissions: "0600"',
        "    content: |",
    ]
    assert entry.split("\n")[3] == "      ${digitalocean_spaces_key.edge_secret.secret_key}"


def test_without_backups_the_edge_secret_stays_and_no_key_reaches_a_backup(
    synthesized: Synth,
) -> None:
    """The edge secret keys the config object's MAC too: every edge has one."""
    stack = synthesized(BY_NAME["base"])  # backups off
    assert set(resources(stack, "digitalocean_spaces_key")) == {"config", "edge_secret"}
    user_data = resources(stack, "digitalocean_droplet")["edge"]["user_data"]
    assert "path: /etc/homelab-tunnel/edge-secret" in user_data
    assert "backup" not in json.dumps(resources(stack, "digitalocean_spaces_key"))
