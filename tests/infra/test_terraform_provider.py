"""Every config shape through the real `terraform validate` and `plan` with the real provider.

The schema check (test_provider_schema.py) names unknown attributes and
wrong types; only the provider knows its enums, ranges, conflicting
attributes, plan-time rules and what Terraform itself evaluates
(references, depends_on, outputs). Shapes without data sources plan with no
API at all (`-refresh=false`, the API a closed port); the others read their
zone or key from the fake DigitalOcean API.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support.fake_digitalocean import FakeDigitalOcean
from support.shapes import SHAPES, Shape, Synth
from support.terraform import UNREACHABLE_API, OfflineTerraform, Run

from homelab_tunnel.config import TunnelConfig
from homelab_tunnel.infra.constructs.firewall import ANYWHERE, PUBLIC_INBOUND

# The default tls.caa_issuer, as DigitalOcean wants it (trailing dot).
CAA_ISSUER = "letsencrypt.org."

ALERTS = ("cpu", "memory", "disk")
NAMES = [shape.name for shape in SHAPES]
OFFLINE = [shape.name for shape in SHAPES if not shape.has_data_sources]
WITH_DATA = [shape.name for shape in SHAPES if shape.has_data_sources]
SHAPE = {shape.name: shape for shape in SHAPES}


@dataclass(frozen=True)
class ShapeRun:
    config: TunnelConfig
    stack: dict[str, Any]
    validate: Run
    plan: Run | None
    planned: dict[str, Any] | None


def _check(
    terraform: OfflineTerraform,
    shape: Shape,
    stack: dict[str, Any],
    root: Path,
    api: str,
    cert: Path,
) -> ShapeRun:
    """init, validate, then plan (with the fake API only when data sources need one)."""
    url = api if shape.has_data_sources else UNREACHABLE_API
    workdir = terraform.workdir(root / shape.name, stack, api_url=url, cert=cert)
    workdir.init()
    validate = workdir.validate()
    plan = workdir.plan(refresh=False) if validate.returncode == 0 else None
    planned = json.loads(workdir.show_plan()) if plan is not None and plan.returncode == 2 else None
    return ShapeRun(shape.config(), stack, validate, plan, planned)


@pytest.fixture(scope="module")
def runs(
    terraform: OfflineTerraform,
    synthesized: Synth,
    fake_api: FakeDigitalOcean,
    certificate: tuple[Path, Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, ShapeRun]:
    stacks = {shape.name: synthesized(shape) for shape in SHAPES}
    root = tmp_path_factory.mktemp("shapes-terraform")
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        done = pool.map(
            lambda s: _check(terraform, s, stacks[s.name], root, fake_api.url, certificate[0]),
            SHAPES,
        )
        return {shape.name: run for shape, run in zip(SHAPES, done, strict=True)}


def _changes(run: ShapeRun) -> dict[str, dict[str, Any]]:
    assert run.planned is not None, run.plan.output if run.plan else run.validate.output
    return {change["address"]: change for change in run.planned["resource_changes"]}


def _expressions(run: ShapeRun, address: str) -> dict[str, Any]:
    assert run.planned is not None
    resources = run.planned["configuration"]["root_module"]["resources"]
    return next(r for r in resources if r["address"] == address)


def _label(config: TunnelConfig, domain: str) -> str:
    name = config.record_name(domain)
    return "apex" if name == "@" else name.replace(".", "_")


def expected_addresses(config: TunnelConfig) -> set[str]:
    """The resources a config must produce, from the config alone."""
    addresses = {
        "digitalocean_droplet.edge",
        "digitalocean_volume.state",
        "digitalocean_reserved_ip.edge",
        "digitalocean_reserved_ip_assignment.edge",
        "digitalocean_firewall.edge",
        "digitalocean_project.edge",
    }
    if config.reserved_ipv6:
        addresses |= {
            "digitalocean_reserved_ipv6.edge",
            "digitalocean_reserved_ipv6_assignment.edge",
        }
    if config.dns.create_zone:
        addresses.add("digitalocean_domain.zone")
    if config.alert_email:
        addresses |= {f"digitalocean_monitor_alert.{alert}" for alert in ALERTS}
    if config.backup.enabled:
        addresses |= {"digitalocean_spaces_bucket.backup", "digitalocean_spaces_key.backup"}
        addresses.add("digitalocean_spaces_key.edge_secret")
    kinds = ["a", "caa", *(["aaaa"] if config.reserved_ipv6 else [])]
    for domain in config.domains:
        addresses |= {f"digitalocean_record.{kind}_{_label(config, domain)}" for kind in kinds}
    return addresses


# ---------------------------------------------------------------------------
# validate: every shape
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_shape_passes_terraform_validate_without_warnings(
    name: str, runs: dict[str, ShapeRun]
) -> None:
    run = runs[name]
    assert run.validate.returncode == 0, run.validate.errors()
    assert run.validate.diagnostics() == []


@pytest.mark.parametrize("name", NAMES)
def test_shape_is_planned_offline_exactly_when_it_has_no_data_sources(
    name: str, runs: dict[str, ShapeRun]
) -> None:
    # The split the plans rely on: "data" in the JSON iff an existing zone or a key by name.
    assert ("data" in runs[name].stack) is SHAPE[name].has_data_sources


# ---------------------------------------------------------------------------
# plan: every shape creates exactly its resources, wired as intended
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_shape_plans_to_create_exactly_its_resources(name: str, runs: dict[str, ShapeRun]) -> None:
    run = runs[name]
    assert run.plan is not None and run.plan.returncode == 2, run.plan and run.plan.errors()
    changes = _changes(run)
    managed = {a: c for a, c in changes.items() if c["mode"] == "managed"}
    assert set(managed) == expected_addresses(run.config)
    assert {tuple(c["change"]["actions"]) for c in managed.values()} == {("create",)}


@pytest.mark.parametrize("name", NAMES)
def test_planned_firewall_opens_the_public_ports_and_ssh_only_to_the_allowlist(
    name: str, runs: dict[str, ShapeRun]
) -> None:
    run = runs[name]
    after = _changes(run)["digitalocean_firewall.edge"]["change"]["after"]
    inbound = {
        (r["protocol"], r["port_range"], frozenset(r["source_addresses"]))
        for r in after["inbound_rule"]
    }
    # An ICMP rule has no port range; the provider plans it as "".
    expected = {(proto, ports or "", frozenset(ANYWHERE)) for proto, ports, _ in PUBLIC_INBOUND}
    if run.config.ssh_allowed_cidrs:
        expected.add(("tcp", "22", frozenset(run.config.ssh_allowed_cidrs)))
    expected |= {(p.protocol, p.port, frozenset(["0.0.0.0/0"])) for p in run.config.ports}
    assert inbound == expected
    outbound = {(r["protocol"], r["port_range"]) for r in after["outbound_rule"]}
    assert outbound == {("tcp", "1-65535"), ("udp", "1-65535"), ("icmp", "")}


@pytest.mark.parametrize("name", NAMES)
def test_planned_records_point_at_the_reserved_addresses_by_reference(
    name: str, runs: dict[str, ShapeRun]
) -> None:
    run = runs[name]
    zone = (
        "digitalocean_domain.zone"
        if run.config.dns.create_zone
        else "data.digitalocean_domain.zone"
    )
    targets = {
        "a": "digitalocean_reserved_ip.edge.ip_address",
        "aaaa": "digitalocean_reserved_ipv6.edge.ip",
    }
    for address, change in _changes(run).items():
        if change["type"] != "digitalocean_record":
            continue
        kind = change["name"].split("_", 1)[0]
        expressions = _expressions(run, address)["expressions"]
        assert f"{zone}.name" in expressions["domain"]["references"], address
        if kind == "caa":
            after = change["change"]["after"]
            assert (after["value"], after["tag"], after["flags"]) == (CAA_ISSUER, "issue", 0)
        else:
            assert targets[kind] in expressions["value"]["references"], address
            assert change["change"]["after_unknown"]["value"] is True, address


@pytest.mark.parametrize("name", NAMES)
def test_planned_droplet_waits_for_its_addresses_and_records_and_carries_the_volume(
    name: str, runs: dict[str, ShapeRun]
) -> None:
    run = runs[name]
    droplet = _expressions(run, "digitalocean_droplet.edge")
    records = {a for a in _changes(run) if a.startswith("digitalocean_record.")}
    addresses = {"digitalocean_reserved_ip.edge"} | (
        {"digitalocean_reserved_ipv6.edge"} if run.config.reserved_ipv6 else set()
    )
    assert set(droplet["depends_on"]) == records | addresses
    assert "digitalocean_volume.state.id" in droplet["expressions"]["volume_ids"]["references"]
    volume = _changes(run)["digitalocean_volume.state"]["change"]["after"]
    assert (volume["size"], volume["region"]) == (run.config.volume.size_gb, run.config.region)


@pytest.mark.parametrize("name", NAMES)
def test_planned_outputs_exist_for_exactly_the_optional_parts_configured(
    name: str, runs: dict[str, ShapeRun]
) -> None:
    run = runs[name]
    assert run.planned is not None
    expected = {
        "reserved_ip",
        "droplet_ipv4",
        "site_urls",
        "headscale_url",
        "headscale_version",
        "ssh_command",
    }
    if run.config.reserved_ipv6:
        expected.add("reserved_ipv6")
    if run.config.backup.enabled:
        expected.add("backup_bucket")
    assert set(run.planned["output_changes"]) == expected
    version = run.planned["output_changes"]["headscale_version"]["after"]
    assert version == run.config.headscale.version


@pytest.mark.parametrize("name", OFFLINE)
def test_shape_without_data_sources_plans_with_the_api_unreachable(
    name: str, runs: dict[str, ShapeRun]
) -> None:
    run = runs[name]
    assert run.plan is not None and run.plan.returncode == 2
    assert run.planned is not None and "data" not in run.stack


def test_plans_with_data_sources_only_read_the_zone_and_the_keys(
    runs: dict[str, ShapeRun], fake_api: FakeDigitalOcean
) -> None:
    assert all(runs[name].planned is not None for name in WITH_DATA)
    reads = {call.path for call in fake_api.calls}
    assert reads <= {"/v2/domains/example.com", "/v2/account/keys"}
    assert {call.method for call in fake_api.calls} == {"GET"}


def test_the_backup_key_may_touch_the_backup_bucket_only(runs: dict[str, ShapeRun]) -> None:
    """The edge's Spaces key: one grant, readwrite, on the bucket the stack creates."""
    planned = _changes(runs["backups"])
    key = planned["digitalocean_spaces_key.backup"]["change"]
    bucket = planned["digitalocean_spaces_bucket.backup"]["change"]["after"]
    assert key["after"]["grant"] == [{"bucket": "homelab-edge-backup", "permission": "readwrite"}]
    assert bucket["acl"] == "private"
    assert bucket["versioning"] == [{"enabled": True}]
    assert {rule["id"] for rule in bucket["lifecycle_rule"]} == {
        "expire-old-versions",
        "drop-delete-markers",
    }
