"""The edges of every value's shape, read back by the real tool of each target.

A config value lands in the Caddyfile (Caddy expands `{$VAR}`), headscale.yaml
and the user_data YAML (cloud-init), env files that bash sources, and policy
JSON. The config accepts only shapes that are literal in all of them; these
tests put the most awkward accepted values through each real reader and
expect them back unchanged. Each has a negative twin: the same reader, given
a value the config refuses, shows why it is refused.
(Terraform JSON: tests/infra/test_terraform_reading.py.)
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.caddy import CADDY, find, needs_caddy
from support.config import (
    EDGY_ACME_EMAIL,
    EDGY_AUTH_PATH,
    EDGY_BASIC_USER,
    EDGY_DERP_URL,
    EDGY_HASH,
    edgy_config,
)

from homelab_tunnel.config import TlsConfig, TunnelConfig
from homelab_tunnel.crawlers import ai_crawlers
from homelab_tunnel.edge.versions import LITESTREAM_VERSION
from homelab_tunnel.payload import first_boot_files
from homelab_tunnel.payload import user_data as render_user_data
from homelab_tunnel.render.caddyfile import render_caddyfile
from homelab_tunnel.render.edge_env import render_edge_env, render_health_env
from homelab_tunnel.render.headscale import render_headscale_config
from homelab_tunnel.render.policy import render_policy

SOFTWARE = "0" * 64  # a software hash: hex, like every value of edge.env
needs_cloud_init = pytest.mark.skipif(
    shutil.which("cloud-init") is None,
    reason="cloud-init missing: `make test` installs Debian's cloud-init (needs apt-get as root)",
)


@pytest.fixture(scope="module")
def edgy() -> TunnelConfig:
    return edgy_config()


def _unchecked(config: TunnelConfig, **changes: Any) -> TunnelConfig:
    """`config` with values the config would refuse (no validation), for negative twins."""
    return config.model_copy(update=changes)


# ---------------------------------------------------------------------------
# Caddyfile: caddy adapt
# ---------------------------------------------------------------------------


def _adapt(text: str, tmp_path: Path) -> dict[str, Any]:
    assert CADDY is not None
    path = tmp_path / "Caddyfile"
    path.write_text(text)
    env = {"PATH": os.environ["PATH"], "HOME": "/home/edge", "XDG_DATA_HOME": str(tmp_path)}
    done = subprocess.run(
        [CADDY, "adapt", "--config", str(path), "--adapter", "caddyfile"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def _emails(adapted: dict[str, Any]) -> list[str]:
    policies = adapted["apps"]["tls"]["automation"]["policies"]
    return [issuer["email"] for policy in policies for issuer in policy.get("issuers", [])]


@needs_caddy
def test_caddy_reads_the_acme_email_literally(edgy: TunnelConfig, tmp_path: Path) -> None:
    emails = _emails(_adapt(render_caddyfile(edgy, ai_crawlers()), tmp_path))
    assert emails
    assert set(emails) == {EDGY_ACME_EMAIL}


@needs_caddy
def test_caddy_reads_every_site_name_and_upstream_literally(
    edgy: TunnelConfig, tmp_path: Path
) -> None:
    text = json.dumps(_adapt(render_caddyfile(edgy, ai_crawlers()), tmp_path))
    for site in edgy.sites:
        assert json.dumps([site.domain]) in text
        assert f'"{edgy.upstream_host(site)}' in text


@needs_caddy
def test_caddy_reads_every_policy_value_literally(edgy: TunnelConfig, tmp_path: Path) -> None:
    adapted = _adapt(render_caddyfile(edgy, ai_crawlers()), tmp_path)
    assert find(adapted, "accounts") == [[{"username": EDGY_BASIC_USER, "password": EDGY_HASH}]]
    assert {"method": "GET", "uri": EDGY_AUTH_PATH} in find(adapted, "rewrite")
    assert {"ranges": ["203.0.113.7/32", "2001:db8::/64"]} in find(adapted, "remote_ip")


@needs_caddy
def test_negative_twin_caddy_expands_a_placeholder_in_an_email(
    edgy: TunnelConfig, tmp_path: Path
) -> None:
    # What the config's email shape prevents: Caddy puts the edge's environment in.
    spoiled = _unchecked(edgy, tls=TlsConfig.model_construct(email="{$HOME}@example.com"))
    assert set(_emails(_adapt(render_caddyfile(spoiled, ai_crawlers()), tmp_path))) == {
        "/home/edge@example.com"
    }


# ---------------------------------------------------------------------------
# headscale.yaml and policy.hujson: YAML and JSON parsers
# ---------------------------------------------------------------------------


def test_headscale_yaml_reads_every_value_literally(edgy: TunnelConfig) -> None:
    document = yaml.safe_load(render_headscale_config(edgy))
    assert document["derp"]["urls"] == [EDGY_DERP_URL]
    assert document["server_url"] == edgy.headscale_url
    assert document["dns"]["base_domain"] == edgy.headscale.base_domain
    assert document["derp"]["server"]["region_name"] == f"{edgy.name} edge"


def test_policy_names_every_upstream_literally(edgy: TunnelConfig) -> None:
    body = re.sub(r"(?m)^//.*\n", "", render_policy(edgy))
    assert json.loads(body)["acls"][0]["dst"] == [
        "100.64.0.7:8080",
        "au-th@:1",
        "n0@:65535",
        "nas-1@:443",
    ]


# ---------------------------------------------------------------------------
# Env files: what bash reads when bootstrap sources them
# ---------------------------------------------------------------------------


def _as_bash_reads_it(text: str, tmp_path: Path) -> dict[str, str]:
    """Source the file in a clean bash, then print every variable it assigned."""
    names = [line.split("=", 1)[0] for line in text.splitlines() if "=" in line]
    env_file = tmp_path / "file.env"
    env_file.write_text(text)
    script = 'set -euo pipefail; . "$1"; shift; for n; do printf "%s=%s\\0" "$n" "${!n}"; done'
    done = subprocess.run(
        ["bash", "-c", script, "bash", str(env_file), *names],
        cwd=tmp_path, env={"PATH": "/usr/bin:/bin"}, capture_output=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    pairs = done.stdout.decode().split("\0")[:-1]
    return dict(pair.split("=", 1) for pair in pairs)


def _edge_env_values(config: TunnelConfig) -> dict[str, str]:
    return {
        "EDGE_NAME": config.name,
        "STATE_VOLUME": config.volume_name,
        "HEADSCALE_VERSION": config.headscale.version,
        "HEADSCALE_DEB_SHA256": config.headscale.deb_sha256 or "",
        "EGRESS_VIA_RESERVED_IP": "false",
        "BACKUP_ENABLED": "true" if config.backup.enabled else "false",
        "LITESTREAM_VERSION": LITESTREAM_VERSION,
        "SOFTWARE_SHA256": SOFTWARE,
    }


def test_bash_reads_edge_env_literally(edgy: TunnelConfig, tmp_path: Path) -> None:
    assert _as_bash_reads_it(render_edge_env(edgy, SOFTWARE), tmp_path) == _edge_env_values(edgy)


def test_negative_twin_bash_runs_a_name_that_spans_lines(
    edgy: TunnelConfig, tmp_path: Path
) -> None:
    spoiled = _unchecked(edgy, name="edge\ntouch INJECTED\nX=")
    assert _as_bash_reads_it(render_edge_env(spoiled, SOFTWARE), tmp_path) != _edge_env_values(
        spoiled
    )
    assert (tmp_path / "INJECTED").exists()


def test_health_env_holds_nothing_systemd_would_interpret(edgy: TunnelConfig) -> None:
    # systemd reads health.env (EnvironmentFile=): quotes and backslashes are
    # syntax there, and leading or trailing blanks are dropped (systemd.exec(5)).
    lines = [line for line in render_health_env(edgy).splitlines() if not line.startswith("#")]
    values = dict(line.split("=", 1) for line in lines)
    assert values["HEALTH_UPSTREAMS"] == " ".join(edgy.upstream_hosts)
    for value in values.values():
        assert value == value.strip()
        assert not set(value) & set("\"'\\`$")


# ---------------------------------------------------------------------------
# user_data: cloud-init's schema and its YAML reader
# ---------------------------------------------------------------------------


def _schema(tmp_path: Path, text: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "user-data"
    path.write_text(text)
    return subprocess.run(
        ["cloud-init", "schema", "--config-file", str(path)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


@needs_cloud_init
def test_cloud_init_accepts_the_user_data(edgy: TunnelConfig, tmp_path: Path) -> None:
    done = _schema(tmp_path, render_user_data(edgy))
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_rendered_file_arrives_byte_for_byte(edgy: TunnelConfig) -> None:
    document = yaml.safe_load(render_user_data(edgy))
    assert document["hostname"] == edgy.name
    written = {item["path"]: item["content"] for item in document["write_files"]}
    for file in first_boot_files(edgy):
        assert written[file.path] == file.content, file.path


@needs_cloud_init
def test_negative_twin_a_name_with_a_newline_breaks_the_user_data(
    edgy: TunnelConfig, tmp_path: Path
) -> None:
    spoiled = _unchecked(edgy, name="homelab-edge\n-state")
    assert _schema(tmp_path, render_user_data(spoiled)).returncode != 0
