"""What `homelab-tunnel status` shows, from two samples: one JSON document per frame.

Per site, from Caddy's per-host histograms: totals since Caddy last loaded
its config (a reload starts its counters again) and, between the two
samples, requests/s, 4xx/s and 5xx/s, bytes in/out per second and the p50 and
p95 latency of the requests in between, estimated from the histogram buckets
as Prometheus' `histogram_quantile` does. Per upstream machine: the path,
the ping's round trip, the client version and whether Headscale accepts it,
the last WireGuard handshake. For the edge: versions, the config applied,
certificates, backup lag, bootstrap; and every finding, in doctor's words.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from homelab_tunnel.edge import versions
from homelab_tunnel.edge.exposition import Buckets, Family, difference, histogram, quantile
from homelab_tunnel.edge.observe import Sample
from homelab_tunnel.edge.status import path_of, peers, strings, text, time_of
from homelab_tunnel.edge.verdicts import matches
from homelab_tunnel.findings import Severity, count_line

FORMAT = 1
DURATION = "caddy_http_request_duration_seconds"
REQUEST_SIZE = "caddy_http_request_size_bytes"
RESPONSE_SIZE = "caddy_http_response_size_bytes"


@dataclass(frozen=True)
class Counters:
    """One site's counters in one sample (since Caddy loaded its config)."""

    requests: float
    client_errors: float
    server_errors: float
    bytes_in: float
    bytes_out: float
    latency: Buckets

    def since(self, older: Counters) -> Counters:
        """What happened between `older` and this; everything anew after a reset (a reload)."""
        pairs = [
            (self.requests, older.requests),
            (self.client_errors, older.client_errors),
            (self.server_errors, older.server_errors),
            (self.bytes_in, older.bytes_in),
            (self.bytes_out, older.bytes_out),
        ]
        if any(new < old for new, old in pairs):
            return self
        requests, client_errors, server_errors, bytes_in, bytes_out = (
            new - old for new, old in pairs
        )
        return Counters(
            requests,
            client_errors,
            server_errors,
            bytes_in,
            bytes_out,
            difference(self.latency, older.latency),
        )


def host_of(label: str) -> str:
    """Caddy's host label is the request's Host, port included when the client sent one."""
    host = label.lower()
    if host.startswith("["):
        return host.split("]", 1)[0] + "]"
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _sum(family: Family | None, suffix: str, domain: str, code_class: str = "") -> float:
    if family is None:
        return 0.0
    found = 0.0
    for sample in family.samples:
        if sample.name != family.name + suffix or host_of(sample.label("host")) != domain:
            continue
        if code_class and not sample.label("code").startswith(code_class):
            continue
        found += sample.value
    return found


def counters(sample: Sample, domain: str) -> Counters:
    duration = sample.family("caddy", DURATION)
    buckets: dict[float, float] = {}
    if duration is not None:
        hosts = {host for s in duration.samples if host_of(host := s.label("host")) == domain}
        for host in hosts:
            for bound, count in histogram(duration, host=host):
                buckets[bound] = buckets.get(bound, 0.0) + count
    return Counters(
        requests=_sum(duration, "_count", domain),
        client_errors=_sum(duration, "_count", domain, "4"),
        server_errors=_sum(duration, "_count", domain, "5"),
        bytes_in=_sum(sample.family("caddy", REQUEST_SIZE), "_sum", domain),
        bytes_out=_sum(sample.family("caddy", RESPONSE_SIZE), "_sum", domain),
        latency=sorted(buckets.items()),
    )


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def _site(
    domain: str, upstream: str, now: Counters, window: Counters | None, seconds: float
) -> dict[str, Any]:
    site: dict[str, Any] = {
        "domain": domain,
        "upstream": upstream,
        "totals": {
            "requests": int(now.requests),
            "4xx": int(now.client_errors),
            "5xx": int(now.server_errors),
            "bytes_in": int(now.bytes_in),
            "bytes_out": int(now.bytes_out),
            "p50_ms": _ms(quantile(0.5, now.latency)),
            "p95_ms": _ms(quantile(0.95, now.latency)),
        },
        "rates": None,
    }
    if window is not None and seconds > 0:
        site["rates"] = {
            "seconds": round(seconds, 2),
            "requests": round(window.requests / seconds, 2),
            "4xx": round(window.client_errors / seconds, 2),
            "5xx": round(window.server_errors / seconds, 2),
            "bytes_in": round(window.bytes_in / seconds, 1),
            "bytes_out": round(window.bytes_out / seconds, 1),
            "p50_ms": _ms(quantile(0.5, window.latency)),
            "p95_ms": _ms(quantile(0.95, window.latency)),
        }
    return site


def _sites(current: Sample, previous: Sample | None) -> list[dict[str, Any]]:
    listed = current.sites or [
        {"domain": domain, "upstream": ""} for domain in _hosts_seen(current)
    ]
    found = []
    seconds = current.clock - previous.clock if previous is not None else 0.0
    for site in listed:
        now = counters(current, site["domain"])
        window = now.since(counters(previous, site["domain"])) if previous is not None else None
        found.append(_site(site["domain"], site["upstream"], now, window, seconds))
    return found


def _hosts_seen(sample: Sample) -> list[str]:
    """Without the applied config: the names Caddy has counted, but not the catch-all."""
    duration = sample.family("caddy", DURATION)
    hosts = {host_of(s.label("host")) for s in duration.samples} if duration else set()
    return sorted(hosts - {"", "_other"})


def upstream_views(sample: Sample) -> list[dict[str, Any]]:
    status = sample.status or {}
    minimum = versions.min_tailscale(sample.headscale or sample.settings.headscale_version)
    found = []
    for upstream in sample.settings.upstreams:
        ping = sample.pings.get(upstream)
        entry: dict[str, Any] = {
            "name": upstream,
            "in_tailnet": False,
            "path": None,
            "rtt_ms": ping.rtt_ms if ping else None,
            "ping": ping.via or ping.error if ping else "",
            "version": None,
            "supported": None,
            "last_handshake": None,
        }
        for key, peer in peers(status):
            if not matches(peer, upstream, key):
                continue
            path = path_of(peer, key)
            ips = strings(peer, "TailscaleIPs", key)
            version = sample.versions.get(ips[0]) if ips else None
            handshake = time_of(peer, "LastHandshake", key)
            entry.update(
                in_tailnet=True,
                host=text(peer, "HostName", key),
                address=ips[0] if ips else "",
                path={"kind": path.kind, "via": path.via, "text": str(path)},
                version=_version(version),
                supported=_supported(version, minimum),
                last_handshake=handshake.strftime("%Y-%m-%dT%H:%M:%SZ") if handshake else None,
            )
            break
        found.append(entry)
    return found


def _version(raw: str | None) -> str | None:
    if not raw:
        return None
    try:
        return str(versions.parse_version(raw))
    except ValueError:
        return raw


def _supported(raw: str | None, minimum: versions.Version | None) -> bool | None:
    if not raw or minimum is None:
        return None
    try:
        return versions.client_supported(versions.parse_version(raw), minimum)
    except ValueError:
        return None


def edge_view(sample: Sample) -> dict[str, Any]:
    status = sample.status or {}
    headscale = sample.headscale or sample.settings.headscale_version
    minimum = versions.min_tailscale(headscale)
    applied = sample.config.get("applied") or {}
    refused = sample.config.get("refused") or {}
    return {
        "name": sample.settings.edge,
        "headscale": headscale,
        "min_tailscale": minimum.series if minimum else None,
        "tailscale": _version(str(status.get("Version") or "")),
        "backend_state": status.get("BackendState"),
        "config": {
            "version": applied.get("version"),
            "applied_at": applied.get("at"),
            "refused": refused.get("reason"),
            "status": sample.config,
        },
        "bootstrap": sample.bootstrap,
        "certificates": [cert.to_json(sample.at) for cert in sample.certificates],
        "backup": (
            None
            if not sample.settings.backup_enabled
            else {"error": sample.backup_error or None}
            | (sample.backup.to_json() if sample.backup else {"lag_seconds": None})
        ),
        "sources": {
            name: name not in sample.source_errors
            for name in [*sample.settings.sources, "tailscale"]
        },
    }


def frame(current: Sample, previous: Sample | None = None) -> dict[str, Any]:
    """The document `status` renders (and prints with --json)."""
    bad = any(f.severity is Severity.PROBLEM for f in current.findings)
    if bad or current.report is None:
        summary = count_line(current.findings)
    else:
        summary = current.report.summary()
    return {
        "format": FORMAT,
        "at": current.at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "sample_seconds": round(current.seconds, 3),
        "edge": edge_view(current),
        "sites": _sites(current, previous),
        "upstreams": upstream_views(current),
        "findings": [finding.to_json() for finding in current.findings],
        "ok": not bad,
        "summary": summary,
    }
