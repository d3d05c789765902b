"""One look at the edge, and the frame and gauges made from two: sources scripted, words real."""

from __future__ import annotations

import json
import math
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support.config import DATA
from support.scripted_edge import HOMELAB, NOW, Edge, caddy_page, write_edge_files

from homelab_tunnel.edge.exposition import parse
from homelab_tunnel.edge.frame import frame
from homelab_tunnel.edge.gauges import PATHS, gauges
from homelab_tunnel.edge.observe import Observer, Settings, parse_ping


@pytest.fixture
def edge() -> Edge:
    return Edge()


@pytest.fixture
def observer(tmp_path: Path, edge: Edge) -> Observer:
    write_edge_files(tmp_path)
    return Observer(
        Settings.read(tmp_path),
        root=tmp_path,
        run=edge.run,
        fetch=edge.fetch,
        storage=Path("/var/lib/caddy"),
        wall=lambda: NOW,
    )


def _two(observer: Observer, seconds: float = 2.0) -> dict:
    previous = observer.sample()
    current = observer.sample()
    previous.clock, current.clock = 0.0, seconds
    return frame(current, previous)


def test_settings_come_from_thewrite_edge_files(observer: Observer) -> None:
    settings = observer.settings
    assert settings.edge == "homelab-edge"
    assert (settings.port, settings.scrapers, settings.upstreams) == (
        9180,
        ("homelab",),
        (HOMELAB,),
    )
    assert dict(settings.sources) == {
        "caddy": "http://caddy.local/metrics",
        "headscale": "http://headscale.local/metrics",
    }


def test_a_site_gets_totals_and_rates_between_two_looks(observer: Observer, edge: Edge) -> None:
    edge.pages["caddy"] = [caddy_page(10, 0, 0), caddy_page(16, 2, 2)]
    (site,) = _two(observer)["sites"]
    assert site["domain"] == "blog.example.com"
    assert site["upstream"] == HOMELAB
    totals = site["totals"]
    assert (totals["requests"], totals["4xx"], totals["5xx"]) == (20, 2, 0)
    assert (totals["bytes_in"], totals["bytes_out"]) == (1400, 20000)
    rates = site["rates"]
    assert (rates["requests"], rates["4xx"], rates["5xx"]) == (5.0, 1.0, 0.0)
    assert rates["bytes_out"] == 5000.0  # 10 responses of 1000 bytes in 2 s
    # In between: 6 fast 200s and 2 fast 404s (under 5 ms), 2 slow ones (5-500 ms).
    # Estimated as histogram_quantile does, said to a tenth of a millisecond.
    assert rates["p50_ms"] == pytest.approx(5 * 5 / 8, abs=0.05)
    assert rates["p95_ms"] == pytest.approx(5 + 495 * 0.75, abs=0.06)


def test_a_reload_that_reset_caddys_counters_counts_anew(observer: Observer, edge: Edge) -> None:
    edge.pages["caddy"] = [caddy_page(100, 0, 0), caddy_page(4, 0, 0)]
    (site,) = _two(observer)["sites"]
    assert site["totals"]["requests"] == 4
    assert site["rates"]["requests"] == 2.0


def test_a_host_with_its_port_counts_for_its_site(observer: Observer, edge: Edge) -> None:
    edge.pages["caddy"] = [caddy_page(3, 0, 0, host="Blog.Example.com:443")]
    (site,) = _two(observer)["sites"]
    assert site["totals"]["requests"] == 3


def test_the_upstream_path_round_trip_and_client(observer: Observer) -> None:
    document = _two(observer)
    (upstream,) = document["upstreams"]
    assert upstream["path"] == {
        "kind": "direct",
        "via": "198.51.100.22:41641",
        "text": "direct 198.51.100.22:41641",
    }
    assert upstream["rtt_ms"] == 9.0
    assert (upstream["version"], upstream["supported"]) == ("1.90.2", True)
    assert upstream["last_handshake"] == "2026-08-23T09:12:40Z"
    assert document["ok"] is True
    assert document["summary"].startswith("1 site upstream(s) direct")


def test_a_relayed_upstream_is_doctors_problem(observer: Observer, edge: Edge) -> None:
    edge.status = (DATA / "tailscale" / "status-derp.json").read_text()
    edge.ping = "pong from homelab (100.64.0.2) via DERP(fra) in 31ms\n"
    document = _two(observer)
    (upstream,) = document["upstreams"]
    assert upstream["path"]["text"] == "via DERP region fra"
    assert (upstream["rtt_ms"], upstream["ping"]) == (31.0, "DERP(fra)")
    assert document["ok"] is False
    assert {
        "severity": "problem",
        "subject": f"site upstream {HOMELAB}",
        "message": "via DERP region fra, not direct (is UDP 41641 open on both sides?)",
    } in document["findings"]


def test_a_ping_that_times_out_has_no_round_trip(observer: Observer, edge: Edge) -> None:
    edge.ping = 'ping "100.64.0.2" timed out\nERROR:no reply\n'
    (upstream,) = _two(observer)["upstreams"]
    assert (upstream["rtt_ms"], upstream["ping"]) == (None, "no reply")


def test_client_versions_are_asked_once_a_minute(observer: Observer, edge: Edge) -> None:
    _two(observer)
    observer.sample()
    assert sum(call[:2] == ("tailscale", "whois") for call in edge.calls) == 1
    assert sum(call == ("headscale", "version") for call in edge.calls) == 1
    assert sum(call[:2] == ("tailscale", "ping") for call in edge.calls) == 3


def test_a_silent_source_is_a_warning_and_marked_down(observer: Observer, edge: Edge) -> None:
    edge.down.add("headscale")
    document = _two(observer)
    assert document["edge"]["sources"] == {"caddy": True, "headscale": False, "tailscale": True}
    said = {f["subject"]: (f["severity"], f["message"]) for f in document["findings"]}
    assert said["headscale"] == ("warning", "metrics not readable: Connection refused")
    assert document["ok"] is True


def test_no_tailnet_state_is_a_problem(observer: Observer, edge: Edge) -> None:
    edge.status_code = 1
    document = _two(observer)
    assert document["upstreams"][0]["in_tailnet"] is False
    assert document["edge"]["sources"]["tailscale"] is False
    assert {
        "severity": "problem",
        "subject": "",
        "message": "cannot read the tailnet state: `tailscale status --json` failed: "
        "failed to connect to tailscaled",
    } in document["findings"]


def test_the_edge_part_names_versions_config_and_bootstrap(observer: Observer) -> None:
    edge = _two(observer)["edge"]
    assert (edge["name"], edge["headscale"], edge["min_tailscale"]) == (
        "homelab-edge",
        "0.29.2",
        "1.80",
    )
    assert edge["tailscale"] == "1.90.2"
    assert (edge["config"]["version"], edge["config"]["applied_at"]) == (
        "0123456789ab",
        "2026-08-23T09:00:00Z",
    )
    assert edge["bootstrap"].startswith("ready: edge ready")
    assert edge["backup"] is None  # backups off


def _certificate(storage: Path, name: str, days: int) -> None:
    folder = storage / "certificates" / "acme-v02.api.letsencrypt.org-directory" / name
    folder.mkdir(parents=True)
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", str(folder / f"{name}.key"), "-out", str(folder / f"{name}.crt"),
         "-days", str(days), "-subj", f"/CN={name}"],
        check=True, capture_output=True,
    )  # fmt: skip


def test_certificates_near_their_end_are_said(tmp_path: Path, edge: Edge) -> None:
    write_edge_files(tmp_path)
    storage = tmp_path / "var/lib/caddy"
    for name, days in (
        ("blog.example.com", 60),
        ("photos.example.com", 10),
        ("wiki.example.com", 1),
    ):
        _certificate(storage, name, days)
    now = datetime.now(UTC)
    observer = Observer(
        Settings.read(tmp_path), root=tmp_path, run=edge.run, fetch=edge.fetch,
        storage=Path("/var/lib/caddy"), wall=lambda: now,
    )  # fmt: skip
    document = frame(observer.sample())
    days = {cert["name"]: cert["days_left"] for cert in document["edge"]["certificates"]}
    assert days == {"blog.example.com": 60.0, "photos.example.com": 10.0, "wiki.example.com": 1.0}
    said = {
        f["subject"]: f["severity"] for f in document["findings"] if "certificate" in f["subject"]
    }
    assert said == {
        "certificate photos.example.com": "warning",
        "certificate wiki.example.com": "problem",
    }


@pytest.mark.parametrize(
    ("output", "rtt", "via"),
    [
        ("pong from homelab (100.64.0.2) via 203.0.113.18:41641 in 0s", 0.0, "203.0.113.18:41641"),
        ("pong from homelab (100.64.0.2, 40123) via DERP(headscale) in 12ms", 12.0,
         "DERP(headscale)"),
        ("pong from nas (100.64.0.3) via peer-relay(100.64.0.9:7777:vni:1) in 1.5s", 1500.0,
         "peer-relay(100.64.0.9:7777:vni:1)"),
        ("pong from nas (100.64.0.3) via DERP(x) in 1m2.5s", 62500.0, "DERP(x)"),
    ],
)  # fmt: skip
def test_pong_lines_are_read_as_tailscale_prints_them(output: str, rtt: float, via: str) -> None:
    found = parse_ping(f"{output}\n")
    assert (found.rtt_ms, found.via) == (pytest.approx(rtt), via)


def test_gauges_say_the_path_as_a_state_set(observer: Observer, edge: Edge) -> None:
    edge.status = (DATA / "tailscale" / "status-derp.json").read_text()
    families = {family.name: family for family in gauges(observer.sample())}
    path = families["homelab_tunnel_upstream_path"].samples
    assert [s.label("path") for s in path] == list(PATHS)
    assert {s.label("path"): s.value for s in path if s.value} == {"derp": 1.0}
    assert families["homelab_tunnel_upstream_rtt_seconds"].samples[0].value == pytest.approx(0.009)
    (headscale,) = families["homelab_tunnel_headscale_info"].samples
    assert dict(headscale.labels) == {"version": "0.29.2", "min_tailscale": "1.80"}
    findings = {s.label("severity"): s.value for s in families["homelab_tunnel_findings"].samples}
    assert findings["problem"] >= 1
    assert all(name.startswith("homelab_tunnel_") for name in families)


def test_an_upstream_missing_from_the_tailnet_is_the_missing_state(
    observer: Observer, edge: Edge
) -> None:
    status = json.loads(edge.status)
    status["Peer"] = {}
    edge.status = json.dumps(status)
    families = {family.name: family for family in gauges(observer.sample())}
    path = families["homelab_tunnel_upstream_path"].samples
    assert {s.label("path"): s.value for s in path if s.value} == {"missing": 1.0}
    assert "homelab_tunnel_upstream_last_handshake_timestamp_seconds" not in families


def test_the_handshake_gauge_is_unix_time_in_utc(observer: Observer) -> None:
    families = {family.name: family for family in gauges(observer.sample())}
    (handshake,) = families["homelab_tunnel_upstream_last_handshake_timestamp_seconds"].samples
    expected = datetime(2026, 8, 23, 9, 12, 40, tzinfo=UTC).timestamp()
    assert handshake.value == expected
    assert not math.isnan(handshake.value)
    assert parse(f"x {handshake.value}\n")["x"].samples[0].value == expected
    assert NOW - datetime.fromtimestamp(handshake.value, UTC) < timedelta(minutes=1)
