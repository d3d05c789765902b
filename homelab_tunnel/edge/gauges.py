"""The edge's own metrics, from one sample: what neither Caddy nor Headscale can say.

Named `homelab_tunnel_*`. The path of each upstream is a state set (one
series per kind, 1 for the current one), so an alert reads
`homelab_tunnel_upstream_path{path="derp"} == 1` and a graph shows when it
moved. Versions are info-style series (value 1, the version a label). The
Grafana dashboard and the alert rules in monitoring/ use exactly these names;
a test reads them from a real edge in the lab.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from homelab_tunnel.edge.exposition import Family, Labels, Sample
from homelab_tunnel.edge.frame import edge_view, upstream_views
from homelab_tunnel.edge.observe import Sample as Look
from homelab_tunnel.findings import Severity

PATHS = ("direct", "derp", "peer-relay", "idle", "offline", "missing")
PREFIX = "homelab_tunnel_"


def _family(name: str, kind: str, help_text: str, rows: Iterable[tuple[Labels, float]]) -> Family:
    full = PREFIX + name
    return Family(full, kind, help_text, [Sample(full, labels, value) for labels, value in rows])


def _timestamp(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None


def gauges(look: Look) -> list[Family]:
    """Every own family for one sample; series whose value is unknown are left out."""
    edge = edge_view(look)
    upstreams = upstream_views(look)
    families = [
        _family(
            "source_up",
            "gauge",
            "Whether the edge could read this source (1) or not (0) in this scrape.",
            [((("source", name),), float(up)) for name, up in edge["sources"].items()],
        ),
        _family(
            "upstream_path",
            "gauge",
            "The tailnet path to each upstream machine: 1 for the current kind "
            "(direct, derp, peer-relay, idle, offline, missing from the tailnet).",
            [
                ((("upstream", up["name"]), ("path", kind)), float(_kind(up) == kind))
                for up in upstreams
                for kind in PATHS
            ],
        ),
        _family(
            "upstream_rtt_seconds",
            "gauge",
            "Round trip of a `tailscale ping` to the upstream (rounded to the millisecond).",
            [
                ((("upstream", up["name"]),), up["rtt_ms"] / 1000)
                for up in upstreams
                if up["rtt_ms"] is not None
            ],
        ),
        _family(
            "upstream_last_handshake_timestamp_seconds",
            "gauge",
            "Unix time of the last WireGuard handshake with the upstream.",
            [
                ((("upstream", up["name"]),), ts)
                for up in upstreams
                if (ts := _timestamp(up["last_handshake"])) is not None
            ],
        ),
        _family(
            "client_version_accepted",
            "gauge",
            "Whether Headscale accepts the Tailscale client of each node (1) or refuses it (0).",
            _accepted(look),
        ),
        _family(
            "headscale_info",
            "gauge",
            "The Headscale release on the edge and the oldest Tailscale client it accepts.",
            [
                (
                    (
                        ("version", edge["headscale"]),
                        ("min_tailscale", edge["min_tailscale"] or ""),
                    ),
                    1.0,
                )
            ],
        ),
        _family(
            "tailscale_info",
            "gauge",
            "The edge's own Tailscale client.",
            [((("version", edge["tailscale"] or ""),), 1.0)],
        ),
        _family(
            "config_info",
            "gauge",
            "The config version the edge applied (the first 12 hex digits of its SHA-256).",
            [((("version", edge["config"]["version"]),), 1.0)] if edge["config"]["version"] else [],
        ),
        _family(
            "config_applied_timestamp_seconds",
            "gauge",
            "Unix time the edge applied its current config.",
            [((), ts) for ts in [_timestamp(edge["config"]["applied_at"])] if ts is not None],
        ),
        _family(
            "config_refused",
            "gauge",
            "1 when the edge refused the newest config in the bucket (and serves the previous).",
            [((), float(bool(edge["config"]["refused"])))],
        ),
        _family(
            "bootstrap_ready",
            "gauge",
            "1 when the edge's bootstrap finished (edge ready), 0 while it fails or runs.",
            [((), float(look.bootstrap.startswith("ready:")))],
        ),
        _family(
            "certificate_expiry_timestamp_seconds",
            "gauge",
            "Unix time each certificate Caddy serves expires.",
            [((("name", cert.name),), cert.not_after.timestamp()) for cert in look.certificates],
        ),
        _family(
            "backup_lag_seconds",
            "gauge",
            "Age of the oldest change to Headscale's database not yet in the backup bucket.",
            [((), look.backup.seconds)] if look.backup else [],
        ),
        _family(
            "findings",
            "gauge",
            "Findings of the edge's health judgement (doctor's), by severity.",
            [
                ((("severity", severity.value),), float(_count(look, severity)))
                for severity in (Severity.PROBLEM, Severity.WARNING)
            ],
        ),
        _family(
            "scrape_duration_seconds",
            "gauge",
            "How long the edge took to read every source for this page.",
            [((), look.seconds)],
        ),
    ]
    return [family for family in families if family.samples]


def _kind(upstream: dict[str, object]) -> str:
    path = upstream["path"]
    return str(path["kind"]) if isinstance(path, dict) else "missing"


def _accepted(look: Look) -> list[tuple[Labels, float]]:
    if look.report is None:
        return []
    return [
        ((("node", node.name), ("version", node.version or "")), float(node.supported))
        for node in look.report.nodes
        if node.supported is not None
    ]


def _count(look: Look, severity: Severity) -> int:
    return sum(1 for finding in look.findings if finding.severity is severity)
