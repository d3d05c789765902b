"""Headscale's journal: "unsupported client version" refusals, grouped and named."""

from __future__ import annotations

import json

from support.tailnet import (
    HEADSCALE,
    HOMELAB,
    TAILSCALE,
    diagnose_fixture,
    status_fixture,
)

from homelab_tunnel.edge.journal import scan_journal


def test_journal_text_format_rejections_are_grouped_by_client() -> None:
    rejections = scan_journal((HEADSCALE / "journal-0.29-text.log").read_text())
    assert [(r.client_version, r.capver, r.count) for r in rejections] == [
        ("v1.36", 56, 2),
        ("v1.74", 106, 1),
    ]
    assert 'error="upgrading noise connection: unsupported client version' in (
        rejections[0].example
    )


def test_journal_json_format_rejections_are_found() -> None:
    rejections = scan_journal((HEADSCALE / "journal-0.29-json.log").read_text())
    assert [(r.client_version, r.capver, r.count) for r in rejections] == [
        ("v1.36", 56, 1),
        ("v1.74", 106, 1),
    ]


def test_journal_empty_name_variant_is_named_from_the_capability_version() -> None:
    """Headscale 0.26 has no name for capability 56 and logs "version:  (56)"."""
    rejections = scan_journal((HEADSCALE / "journal-0.26-text.log").read_text())
    assert [(r.client_version, r.capver) for r in rejections] == [("", 56)]
    assert str(rejections[0]) == (
        "Headscale rejected Tailscale 1.36 (capability version 56) as unsupported (1 log line)"
    )


def test_journal_without_rejections_is_clean() -> None:
    assert scan_journal((HEADSCALE / "journal-clean.log").read_text()) == []


def test_journal_startup_minimum_line_is_not_a_rejection() -> None:
    line = "INF Clients with a lower minimum version will be rejected minimum_version=v1.80"
    assert scan_journal(line) == []


def test_unrecognised_unsupported_client_wording_is_still_reported() -> None:
    rejections = scan_journal("ERR unsupported client: something new\n")
    assert [(r.client_version, r.capver, r.client) for r in rejections] == [
        ("", None, "an unnamed client")
    ]


def test_journal_rejections_fail_a_healthy_tailnet() -> None:
    report = diagnose_fixture("direct", journal="journal-0.29-json.log")
    assert not report.ok
    assert len(report.rejections) == 2


def test_report_json_has_the_verdicts() -> None:
    report = diagnose_fixture("mixed", whois="mixed", journal="journal-0.29-text.log")
    assert report.ok is False
    document = report.details()
    assert document["min_tailscale"] == "1.80.0"
    homelab = next(node for node in document["nodes"] if node["name"] == HOMELAB)
    assert homelab["path"] == {
        "kind": "direct",
        "via": "198.51.100.22:41641",
        "text": "direct 198.51.100.22:41641",
    }
    assert homelab["site_upstream"] is True
    assert document["rejections"][0]["client"] == "Tailscale 1.36"
    json.dumps(document)  # serialisable as is


def test_fixture_field_names_are_those_of_ipnstate() -> None:
    """Guards the fixtures themselves: every key doctor reads is spelled as tailscaled does."""
    peer = next(iter(status_fixture("peer-relay")["Peer"].values()))
    for key in ("Online", "Active", "CurAddr", "Relay", "PeerRelay", "TailscaleIPs", "DNSName"):
        assert key in peer
    assert "PeerRelay" not in (TAILSCALE / "status-pre-1.86-client.json").read_text()
