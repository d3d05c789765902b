"""doctor's verdicts on real-shaped `tailscale status --json`, whois and Headscale journals."""

from __future__ import annotations

import json
from typing import Any

import pytest
from support.tailnet import (
    HOMELAB,
    diagnose_fixture,
    status_fixture,
    whois_fixture,
)

from homelab_tunnel.edge.collect import ping_command
from homelab_tunnel.edge.status import PathVerdict, SourceError, parse_whois, path_of
from homelab_tunnel.edge.verdicts import Report


def _node(report: Report, name: str) -> Any:
    return next(node for node in report.nodes if node.name == name)


# ---------------------------------------------------------------------------
# Paths
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fixture", "verdict"),
    [
        ("direct", "direct 198.51.100.22:41641"),
        ("derp", "via DERP region fra"),
        ("peer-relay", "via peer relay 100.64.0.7:7777:vni:7"),
        ("offline", "offline"),
        ("idle", "idle"),
        ("pre-1.86-client", "direct 198.51.100.22:41641"),
    ],
)
def test_site_upstream_path_verdict(fixture: str, verdict: str) -> None:
    report = diagnose_fixture(fixture)
    assert str(_node(report, HOMELAB).path) == verdict


def test_direct_upstream_is_healthy() -> None:
    report = diagnose_fixture("direct")
    assert report.ok, report.problems
    assert report.summary().startswith("1 site upstream(s) direct")


@pytest.mark.parametrize(
    ("fixture", "reason"),
    [
        ("derp", "via DERP region fra, not direct (is UDP 41641 open on both sides?)"),
        ("peer-relay", "via peer relay 100.64.0.7:7777:vni:7, not direct"),
        ("offline", "offline (not connected to Headscale)"),
        ("idle", "idle, no current path even after a ping"),
    ],
)
def test_site_upstream_not_direct_is_the_one_problem(fixture: str, reason: str) -> None:
    report = diagnose_fixture(fixture)
    assert report.problems == [f"site upstream {HOMELAB}: {reason}"]
    assert not report.ok


def test_relay_is_the_home_region_even_when_direct() -> None:
    peer = {"Online": True, "Active": True, "CurAddr": "198.51.100.22:41641", "Relay": "fra"}
    assert path_of(peer) == PathVerdict("direct", "198.51.100.22:41641")


def test_offline_is_decided_before_any_address() -> None:
    peer = {"Online": False, "Active": True, "CurAddr": "198.51.100.22:41641"}
    assert path_of(peer).kind == "offline"


def test_inactive_peer_has_no_current_path() -> None:
    peer = {"Online": True, "Active": False, "CurAddr": "198.51.100.22:41641", "Relay": "fra"}
    assert path_of(peer).kind == "idle"


def test_active_peer_without_direct_or_peer_relay_uses_derp() -> None:
    peer = {"Online": True, "Active": True, "CurAddr": "", "Relay": "headscale"}
    assert str(path_of(peer)) == "via DERP region headscale"


def test_missing_keys_read_as_empty() -> None:
    assert path_of({"Online": True, "Active": True, "Relay": "fra"}).kind == "derp"
    assert path_of({}).kind == "offline"


def test_peers_that_are_not_upstreams_are_reported_but_not_problems() -> None:
    report = diagnose_fixture("mixed", whois="homelab")
    assert str(_node(report, "backup.tail.example.net").path) == "via DERP region headscale"
    assert not any("backup" in problem for problem in report.problems)


@pytest.mark.parametrize(
    ("upstream", "target"),
    [
        (HOMELAB, f"{HOMELAB}."),  # as DNSName, trailing dot: found among the peers
        (f"{HOMELAB}.", f"{HOMELAB}."),
        ("homelab", "homelab"),  # short name: found among the peers
        ("100.64.0.7", "100.64.0.7"),
        ("fd7a:115c:a1e0::7", "fd7a:115c:a1e0::7"),
    ],
)
def test_ping_names_the_upstream_as_tailscale_ping_finds_it(upstream: str, target: str) -> None:
    assert ping_command(upstream) == ("tailscale", "ping", "-c", "1", "--timeout", "5s", target)


# ---------------------------------------------------------------------------
# Which peers are site upstreams
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "upstream",
    [HOMELAB, "homelab", "HOMELAB.tail.example.net.", "100.64.0.2", "fd7a:115c:a1e0::2"],
)
def test_upstream_matches_by_magicdns_name_host_name_or_address(upstream: str) -> None:
    report = diagnose_fixture("mixed", upstreams=(upstream,))
    upstream_nodes = [node.name for node in report.nodes if node.upstream]
    assert upstream_nodes == [HOMELAB]


def test_upstream_missing_from_the_tailnet_is_a_problem() -> None:
    report = diagnose_fixture("direct", upstreams=(HOMELAB, "nas2.tail.example.net"))
    assert report.missing_upstreams == ["nas2.tail.example.net"]
    assert any(
        "site upstream nas2.tail.example.net: not in this node's tailnet" in p
        for p in report.problems
    )


def test_without_upstreams_only_versions_and_the_journal_decide() -> None:
    report = diagnose_fixture("derp", upstreams=())
    assert report.ok
    assert not any(node.upstream for node in report.nodes)


# ---------------------------------------------------------------------------
# Client versions
# ---------------------------------------------------------------------------


def test_peer_version_comes_from_whois_without_build_suffix() -> None:
    report = diagnose_fixture("direct", whois="homelab-1.36")
    homelab = _node(report, HOMELAB)
    assert homelab.version == "1.36.0"
    assert homelab.supported is False


def test_unsupported_peer_client_is_a_problem() -> None:
    report = diagnose_fixture("direct", whois="homelab-1.36")
    assert any(
        p.startswith(f"{HOMELAB}: runs Tailscale 1.36.0; Headscale 0.29.2 accepts 1.80")
        for p in report.problems
    )


def test_outdated_edge_client_is_a_problem() -> None:
    """The incident: the edge itself on 1.36, its sites relayed through a public region."""
    report = diagnose_fixture("outdated-edge")
    assert any(p.startswith("this node: runs Tailscale 1.36.0") for p in report.problems)
    assert any("via DERP region fra" in p for p in report.problems)
    assert "tailscaled: not connected to home DERP region 999" in report.warnings


@pytest.mark.parametrize(("headscale", "supported"), [("0.28.0", True), ("0.29.2", False)])
def test_minimum_follows_the_configured_headscale(headscale: str, supported: bool) -> None:
    report = diagnose_fixture(
        "direct", whois={"100.64.0.2": "1.74.0-tab12cd34-gef56ab78"}, headscale=headscale
    )
    assert _node(report, HOMELAB).supported is supported


def test_unstable_client_newer_than_the_minimum_is_supported() -> None:
    report = diagnose_fixture("mixed", whois="mixed")
    laptop = _node(report, "laptop.tail.example.net")
    assert laptop.version == "1.91.47"
    assert laptop.supported is True


def test_unknown_peer_versions_are_not_judged() -> None:
    report = diagnose_fixture("direct", whois=None)
    assert _node(report, HOMELAB).version is None
    assert _node(report, HOMELAB).supported is None
    assert report.ok
    assert any("whois" in note for note in report.notes)


def test_headscale_missing_from_the_table_is_a_warning() -> None:
    report = diagnose_fixture("direct", headscale="0.30.0")
    assert _node(report, HOMELAB).supported is None
    assert any("Headscale 0.30.0: not in the version table" in w for w in report.warnings)


def test_mixed_tailnet_reports_every_problem() -> None:
    report = diagnose_fixture("mixed", whois="mixed", journal="journal-0.29-text.log")
    assert sorted(report.problems) == sorted(
        [
            "nas.tail.example.net: runs Tailscale 1.36.0; Headscale 0.29.2 accepts 1.80 or "
            "newer: upgrade it from Tailscale's official repository",
            "Headscale journal: Headscale rejected Tailscale 1.36 (capability version 56) "
            "as unsupported (2 log lines)",
            "Headscale journal: Headscale rejected Tailscale 1.74 (capability version 106) "
            "as unsupported (1 log line)",
        ]
    )
    assert [str(node.path) for node in report.nodes if node.upstream] == [
        "direct 198.51.100.22:41641"
    ]


# ---------------------------------------------------------------------------
# Key expiry and tailscaled state
# ---------------------------------------------------------------------------


def test_key_expiring_within_seven_days_is_a_warning() -> None:
    report = diagnose_fixture("mixed", whois="mixed")
    assert _node(report, "laptop.tail.example.net").key_note == "expires in 2 day(s)"
    assert "laptop.tail.example.net: node key expires in 2 day(s)" in report.warnings


def test_expired_key_is_a_warning() -> None:
    report = diagnose_fixture("mixed", whois="mixed")
    assert _node(report, "phone.tail.example.net").key_note == "expired"


def test_key_expiry_beyond_seven_days_is_quiet() -> None:
    status = status_fixture("direct")
    peer = next(iter(status["Peer"].values()))
    peer["KeyExpiry"] = "2026-09-23T09:15:00.123456789Z"
    report = diagnose_fixture(status)
    assert _node(report, HOMELAB).key_note == ""
    assert report.warnings == []


def test_expired_flag_counts_even_without_a_date() -> None:
    status = status_fixture("direct")
    next(iter(status["Peer"].values()))["Expired"] = True
    assert _node(diagnose_fixture(status), HOMELAB).key_note == "expired"


def test_tailscaled_not_running_is_a_problem() -> None:
    status = status_fixture("direct")
    status["BackendState"] = "NeedsLogin"
    report = diagnose_fixture(status)
    assert any(p.startswith("this node: tailscaled is NeedsLogin") for p in report.problems)


# ---------------------------------------------------------------------------
# whois
# ---------------------------------------------------------------------------


def test_whois_stream_maps_every_address_to_its_version() -> None:
    versions = whois_fixture("mixed")
    assert versions["100.64.0.3"].startswith("1.36.0-")
    assert versions["fd7a:115c:a1e0::3"] == versions["100.64.0.3"]
    assert len(versions) == 12


def test_whois_without_hostinfo_version_is_skipped() -> None:
    document = {"Node": {"Addresses": ["100.64.0.9/32"], "Hostinfo": {}}}
    assert parse_whois(json.dumps(document)) == {}


@pytest.mark.parametrize("text", ["{", "[1]", '{"UserProfile": {}}'])
def test_malformed_whois_is_refused(text: str) -> None:
    with pytest.raises(SourceError, match="tailscale whois"):
        parse_whois(text)
