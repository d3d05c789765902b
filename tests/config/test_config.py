"""Config validation: what users get wrong fails with the field named, exit code 2."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support.config import EXAMPLE, example_raw, write_config
from typer.testing import CliRunner

from homelab_tunnel.cli import app
from homelab_tunnel.config import load_config

runner = CliRunner()

Mutation = Callable[[dict[str, Any]], None]


def _parent(raw: dict[str, Any], path: str) -> tuple[Any, str]:
    *parents, last = path.split(".")
    target: Any = raw
    for part in parents:
        target = target[int(part)] if part.isdigit() else target[part]
    return target, last


def _set(path: str, value: Any) -> Mutation:
    def mutate(raw: dict[str, Any]) -> None:
        target, key = _parent(raw, path)
        target[key] = value

    return mutate


def _delete(path: str) -> Mutation:
    def mutate(raw: dict[str, Any]) -> None:
        target, key = _parent(raw, path)
        del target[key]

    return mutate


# (case, mutation, text the error line must contain: the field and what is allowed)
BAD_CONFIGS: list[tuple[str, Mutation, list[str]]] = [
    ("unknown top-level key", _set("regoin", "fra1"), ["regoin: unknown key", "region"]),
    ("channel region without Spaces", _set("channel", {"region": "nyc1"}), ["channel.region", "a region with Spaces"]),
    ("config and backups in one bucket", _set("channel", {"bucket": "homelab-edge-backup"}), ["channel.bucket", "the backup bucket too", "must only read its config"]),
    ("unknown nested key", _set("dns.create", True), ["dns.create: unknown key", "create_zone"]),
    ("unknown site key", _set("sites.0.hostname", "x"), ["sites.0.hostname: unknown key"]),
    ("site domain not a FQDN", _set("sites.0.domain", "blog"), ["sites.0.domain", "fully qualified"]),
    ("site domain with a space", _set("sites.1.domain", "my blog.example.com"), ["sites.1.domain"]),
    ("wildcard site", _set("sites.0.domain", "*.example.com"), ["sites.0.domain", "wildcard"]),
    ("site outside the zone", _set("sites.0.domain", "blog.example.org"), ["sites.0.domain", "outside the DNS zone"]),
    ("duplicate site domains", _set("sites.1.domain", "blog.example.com"), ["sites.1.domain", "already used by sites.0"]),
    ("duplicate differing in case", _set("sites.1.domain", "BLOG.example.com."), ["sites.1.domain", "already used"]),
    ("headscale domain used as a site", _set("sites.0.domain", "headscale.example.com"), ["sites.0.domain", "Headscale domain"]),
    ("headscale domain outside the zone", _set("headscale.domain", "hs.example.org"), ["headscale.domain", "outside the DNS zone"]),
    ("base domain equals headscale domain", _set("headscale.base_domain", "headscale.example.com"), ["headscale.base_domain", "must not equal or contain"]),
    ("base domain is a suffix of headscale domain", _set("headscale.base_domain", "example.com"), ["headscale.base_domain", "must not equal or contain"]),
    ("no sites", _set("sites", []), ["sites: ", "at least 1"]),
    ("missing dns section", _delete("dns"), ["dns: required but missing"]),
    ("missing site port", _delete("sites.0.port"), ["sites.0.port: required but missing"]),
    ("port out of range", _set("sites.0.port", 70000), ["sites.0.port", "65535"]),
    ("port zero", _set("sites.0.port", 0), ["sites.0.port", "greater than or equal to 1"]),
    ("bad scheme", _set("sites.0.scheme", "ftp"), ["sites.0.scheme", "'http' or 'https'"]),
    ("public IP as upstream", _set("sites.0.upstream", "8.8.8.8"), ["sites.0.upstream", "not a tailnet address"]),
    ("upstream is the edge itself", _set("sites.0.upstream", "homelab-edge"), ["sites.0.upstream", "the edge itself"]),
    ("upstream is the edge's user", _set("sites.1.upstream", "edge"), ["sites.1.upstream", "the edge itself"]),
    ("upstream with dots", _set("sites.0.upstream", "homelab.lan"), ["sites.0.upstream", "tailnet machine name"]),
    ("scraper is the edge itself", _set("metrics", {"scrapers": ["monitor", "homelab-edge"]}), ["metrics.scrapers.1", "the edge itself"]),
    ("scraper listed twice", _set("metrics", {"scrapers": ["monitor", "monitor"]}), ["metrics.scrapers.1", "already listed as metrics.scrapers.0"]),
    ("scraper on a public address", _set("metrics", {"scrapers": ["192.0.2.7"]}), ["metrics.scrapers.0", "not a tailnet address"]),
    ("metrics port Caddy holds", _set("metrics", {"port": 443}), ["metrics.port", "already taken", "9180"]),
    ("metrics port sshd holds", _set("metrics", {"port": 22}), ["metrics.port", "already taken"]),
    ("unknown metrics key", _set("metrics", {"scraper": ["monitor"]}), ["metrics.scraper: unknown key", "scrapers"]),
    ("bad region", _set("region", "mars1"), ["region", "not a DigitalOcean region", "fra1"]),
    ("uppercase region", _set("region", "FRA1"), ["region", "not a DigitalOcean region"]),
    ("bad size slug", _set("size", "S 1VCPU"), ["size", "slug"]),
    ("bad name", _set("name", "Homelab Edge"), ["name", "lowercase"]),
    ("cidr with host bits", _set("ssh_allowed_cidrs", ["203.0.113.7/24"]), ["ssh_allowed_cidrs.0", "host bits", "203.0.113.0/24"]),
    ("cidr not an address", _set("ssh_allowed_cidrs", ["my-laptop"]), ["ssh_allowed_cidrs.0", "not an IPv4 or IPv6 network"]),
    ("cidr not a string", _set("ssh_allowed_cidrs", [22]), ["ssh_allowed_cidrs.0", "CIDR string"]),
    ("bad alert email", _set("alert_email", "ops-at-example"), ["alert_email", "email"]),
    ("volume too small", _set("volume.size_gb", 0), ["volume.size_gb"]),
    ("ttl too low", _set("dns.ttl", 5), ["dns.ttl", "30"]),
    ("reserved_ipv6 not a bool", _set("reserved_ipv6", "maybe"), ["reserved_ipv6", "true or false", "not a string ('maybe')"]),
    ("unknown backend type", _set("backend", {"type": "s3"}), ["backend", "'local', 'spaces'"]),
    ("spaces backend without bucket", _set("backend", {"type": "spaces", "key": "a.tfstate", "region": "fra1"}), ["backend.bucket: required but missing"]),
    ("spaces key not a state file", _set("backend", {"type": "spaces", "bucket": "state", "key": "/x", "region": "fra1"}), ["backend.key", ".tfstate"]),
    ("spaces typo", _set("backend", {"type": "spaces", "bucket": "state", "key": "a.tfstate", "region": "fra1", "endpoint": "x"}), ["backend.endpoint: unknown key", "bucket"]),
    ("empty ssh key", _set("ssh_keys", [" "]), ["ssh_keys.0", "fingerprint"]),
    ("acme_ca not https", _set("tls.acme_ca", "http://acme.example.net/dir"), ["tls.acme_ca", "https://"]),
    ("acme_ca and staging together", _set("tls", {"staging": True, "acme_ca": "https://acme.example.net/dir", "caa_issuer": "example.net"}), ["tls", "exclude each other"]),
    ("acme_ca keeping Let's Encrypt's CAA", _set("tls", {"acme_ca": "https://acme.example.net/dir"}), ["tls", "tls.caa_issuer", "forbid that CA"]),
    ("ca_roots without acme_ca", _set("tls", {"ca_roots": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"}), ["tls", "ca_roots needs tls.acme_ca"]),
    ("ca_roots that is not PEM", _set("tls", {"acme_ca": "https://acme.example.net/dir", "caa_issuer": "example.net", "ca_roots": "my root"}), ["tls.ca_roots", "PEM certificates"]),
    ("ca_roots with a private key", _set("tls", {"acme_ca": "https://acme.example.net/dir", "caa_issuer": "example.net", "ca_roots": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"}), ["tls.ca_roots", "and nothing else"]),
    ("caa_issuer not a domain", _set("tls.caa_issuer", "Let's Encrypt"), ["tls.caa_issuer", "fully qualified"]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("mutation", "expected"),
    [pytest.param(mutation, expected, id=case) for case, mutation, expected in BAD_CONFIGS],
)
def test_bad_config_exits_2_naming_the_field(
    tmp_path: Path, mutation: Mutation, expected: list[str]
) -> None:
    raw = copy.deepcopy(example_raw())
    mutation(raw)
    path = write_config(tmp_path, raw)
    result = runner.invoke(app, ["check", "--config", str(path)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if all(t in line for t in expected)]
    assert lines, f"no error line with {expected!r} in:\n{result.stderr}"
    assert all(line.startswith(f"{path}: ") for line in result.stderr.splitlines())


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    raw = copy.deepcopy(example_raw())
    raw["region"] = "mars1"
    raw["sites"][0]["port"] = 0
    raw["typo"] = 1
    result = runner.invoke(app, ["check", "--config", str(write_config(tmp_path, raw))])
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert [line.split(": ")[1] for line in lines] == ["region", "sites.0.port", "typo"]
    assert all(line.startswith(f"{tmp_path / 'edge.toml'}: ") for line in lines)


def test_invalid_toml_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text('name = "edge"\nregion = \n')
    result = runner.invoke(app, ["check", "--config", str(path)])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"{path}: not valid TOML")
    assert "line 2" in result.stderr


def test_missing_file_is_bad_input(tmp_path: Path) -> None:
    result = runner.invoke(app, ["check", "--config", str(tmp_path / "nope.toml")])
    assert result.exit_code == 2
    assert "nope.toml: no such file" in result.stderr


def test_domains_are_normalised(tmp_path: Path) -> None:
    raw = copy.deepcopy(example_raw())
    raw["sites"][0]["domain"] = "Blog.Example.COM."
    config = load_config(write_config(tmp_path, raw))
    assert config.sites[0].domain == "blog.example.com"


def test_bare_address_is_a_single_host_cidr(tmp_path: Path) -> None:
    raw = copy.deepcopy(example_raw())
    raw["ssh_allowed_cidrs"] = ["203.0.113.7", "2001:db8::1"]
    config = load_config(write_config(tmp_path, raw))
    assert config.ssh_allowed_cidrs == ["203.0.113.7/32", "2001:db8::1/128"]


def test_upstreams_resolve_through_magicdns_or_tailnet_address(tmp_path: Path) -> None:
    raw = copy.deepcopy(example_raw())
    raw["sites"][1]["upstream"] = "100.64.0.7"
    config = load_config(write_config(tmp_path, raw))
    assert config.upstream_host(config.sites[0]) == "homelab.tail.example.net"
    assert config.upstream_host(config.sites[1]) == "100.64.0.7"


def test_apex_domain_is_the_at_record(tmp_path: Path) -> None:
    raw = copy.deepcopy(example_raw())
    raw["sites"][0]["domain"] = "example.com"
    config = load_config(write_config(tmp_path, raw))
    assert config.record_name("example.com") == "@"
    assert config.record_name("photos.example.com") == "photos"


def test_example_config_is_valid() -> None:
    config = load_config(EXAMPLE)
    assert config.name == "homelab-edge"
    assert config.ssh_allowed_cidrs == []


def test_the_config_bucket_is_in_the_edges_city_by_default() -> None:
    from support.config import config_with

    assert config_with().channel_region == "fra1"
    assert config_with(region="nyc1").channel_region == "nyc3"
    assert config_with(region="nyc1", channel={"region": "tor1"}).channel_region == "tor1"


def test_every_region_has_a_config_bucket_region() -> None:
    from homelab_tunnel.config.values import NEAREST_SPACES, REGIONS, SPACES_REGIONS

    assert set(REGIONS) <= set(NEAREST_SPACES)
    assert set(NEAREST_SPACES.values()) <= set(SPACES_REGIONS)
