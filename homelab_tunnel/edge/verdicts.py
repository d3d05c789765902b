"""Is every site upstream reached directly, and is every client one Headscale accepts?

Turns what `collect` read (status, whois, journal) into one `Report`: a
verdict per node plus findings. Shared by the operator's `doctor` and the
edge's health agent, so both judge exactly alike.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from homelab_tunnel.edge import versions
from homelab_tunnel.edge.journal import Rejection, scan_journal
from homelab_tunnel.edge.status import (
    PathVerdict,
    flag,
    name_of,
    path_of,
    peers,
    strings,
    text,
    time_of,
)
from homelab_tunnel.edge.versions import Version, client_supported, parse_version
from homelab_tunnel.findings import Finding, Severity, count_line, note, problem, warning

KEY_EXPIRY_WARNING = timedelta(days=7)


@dataclass(frozen=True)
class NodeReport:
    name: str
    addresses: tuple[str, ...]
    os: str
    path: PathVerdict | None  # None for this node itself
    version: str | None  # "1.90.2"; None when unknown
    supported: bool | None  # None when the version or the minimum is unknown
    key_expiry: datetime | None
    key_note: str  # "", "expired", "expires in 3 days"
    upstream: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "addresses": list(self.addresses),
            "os": self.os,
            "self": self.path is None,
            "site_upstream": self.upstream,
            "path": None
            if self.path is None
            else {"kind": self.path.kind, "via": self.path.via, "text": str(self.path)},
            "version": self.version,
            "supported": self.supported,
            "key_expiry": self.key_expiry.isoformat() if self.key_expiry else None,
            "key_note": self.key_note,
        }


@dataclass
class Report:
    headscale_version: str
    minimum: Version | None
    backend_state: str
    nodes: list[NodeReport]
    upstreams: list[str]
    missing_upstreams: list[str]
    rejections: list[Rejection]
    findings: list[Finding] = field(default_factory=list)

    def _texts(self, severity: Severity) -> list[str]:
        return [finding.text for finding in self.findings if finding.severity is severity]

    @property
    def problems(self) -> list[str]:
        return self._texts(Severity.PROBLEM)

    @property
    def warnings(self) -> list[str]:
        return self._texts(Severity.WARNING)

    @property
    def notes(self) -> list[str]:
        return self._texts(Severity.NOTE)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        """One line: counts when there are problems, else what was found healthy."""
        if self.ok:
            direct = sum(1 for n in self.nodes if n.upstream and n.path and n.path.kind == "direct")
            minimum = self.minimum.series if self.minimum else "?"
            return (
                f"{direct} site upstream(s) direct, {len(self.nodes) - 1} peer(s), "
                f"Headscale {self.headscale_version} accepts Tailscale {minimum}+"
                + (f", {len(self.warnings)} warning(s)" if self.warnings else "")
            )
        return count_line(self.findings)

    def details(self) -> dict[str, Any]:
        """Everything but the findings, for the JSON report."""
        return {
            "headscale_version": self.headscale_version,
            "min_tailscale": str(self.minimum) if self.minimum else None,
            "backend_state": self.backend_state,
            "site_upstreams": self.upstreams,
            "missing_upstreams": self.missing_upstreams,
            "nodes": [node.to_json() for node in self.nodes],
            "rejections": [rejection.to_json() for rejection in self.rejections],
        }


def diagnose(
    status: Mapping[str, Any],
    *,
    upstreams: Sequence[str],
    headscale_version: str,
    now: datetime,
    peer_versions: Mapping[str, str] | None = None,
    journal: str | None = None,
) -> Report:
    """Every verdict and finding for one `tailscale status --json` document.

    `peer_versions` maps a tailnet address to the peer's client version
    (`parse_whois`); None means none were read, so peers are not judged on it.
    """
    minimum = versions.min_tailscale(headscale_version)
    report = Report(
        headscale_version=headscale_version,
        minimum=minimum,
        backend_state=str(status.get("BackendState")),
        nodes=[],
        upstreams=list(upstreams),
        missing_upstreams=[],
        rejections=scan_journal(journal) if journal is not None else [],
    )
    report.nodes, found = _nodes(status, upstreams, now, minimum, peer_versions)
    report.missing_upstreams = [up for up in upstreams if up not in found]
    report.findings = _judge(report, status, peer_versions)
    return report


def _nodes(
    status: Mapping[str, Any],
    upstreams: Sequence[str],
    now: datetime,
    minimum: Version | None,
    peer_versions: Mapping[str, str] | None,
) -> tuple[list[NodeReport], set[str]]:
    """This node, then every peer; and the upstreams some peer answered to."""
    self_peer = status.get("Self") or {}
    nodes = [
        _node(self_peer, "self", now, minimum, version=str(status.get("Version") or ""), path=None)
    ]
    found: set[str] = set()
    for key, peer in peers(status):
        matched = [up for up in upstreams if matches(peer, up, key)]
        found.update(matched)
        ips = strings(peer, "TailscaleIPs", key)
        known = peer_versions.get(ips[0], "") if peer_versions and ips else ""
        nodes.append(
            _node(
                peer,
                key,
                now,
                minimum,
                version=known,
                path=path_of(peer, key),
                upstream=bool(matched),
            )
        )
    return nodes, found


def _node(
    peer: Mapping[str, Any],
    where: str,
    now: datetime,
    minimum: Version | None,
    *,
    version: str,
    path: PathVerdict | None,
    upstream: bool = False,
) -> NodeReport:
    parsed: Version | None
    try:
        parsed = parse_version(version) if version else None
    except ValueError:
        parsed = None
    supported = client_supported(parsed, minimum) if parsed and minimum else None
    expiry = time_of(peer, "KeyExpiry", where)
    key_note = ""
    if flag(peer, "Expired", where) or (expiry is not None and expiry <= now):
        key_note = "expired"
    elif expiry is not None and expiry - now <= KEY_EXPIRY_WARNING:
        days = (expiry - now).days
        key_note = "expires today" if days == 0 else f"expires in {days} day(s)"
    return NodeReport(
        name=name_of(peer) or where,
        addresses=tuple(strings(peer, "TailscaleIPs", where)),
        os=text(peer, "OS", where),
        path=path,
        version=str(parsed) if parsed else (version or None),
        supported=supported,
        key_expiry=expiry,
        key_note=key_note,
        upstream=upstream,
    )


def matches(peer: Mapping[str, Any], upstream: str, where: str) -> bool:
    """An upstream names a peer by MagicDNS name, its first label, host name or address."""
    wanted = upstream.lower().removesuffix(".")
    dns = text(peer, "DNSName", where).lower().removesuffix(".")
    names = {dns, dns.split(".", 1)[0], text(peer, "HostName", where).lower()}
    names.update(strings(peer, "TailscaleIPs", where))
    names.discard("")
    return wanted in names


def _judge(
    report: Report, status: Mapping[str, Any], peer_versions: Mapping[str, str] | None
) -> list[Finding]:
    findings: list[Finding] = []
    minimum = report.minimum.series if report.minimum else "?"
    if report.minimum is None:
        findings.append(
            warning(
                f"Headscale {report.headscale_version}",
                "not in the version table; client versions are not judged",
            )
        )
    if report.backend_state != "Running":
        findings.append(
            problem(
                "this node",
                f"tailscaled is {report.backend_state}, not Running "
                "(not logged in to Headscale, or refused by it)",
            )
        )
    for node in report.nodes:
        who = "this node" if node.path is None else node.name
        if node.supported is False:
            findings.append(
                problem(
                    who,
                    f"runs Tailscale {node.version}; Headscale {report.headscale_version} "
                    f"accepts {minimum} or newer: upgrade it from Tailscale's official repository",
                )
            )
        if node.key_note:
            findings.append(warning(who, f"node key {node.key_note}"))
        if node.upstream and node.path is not None and node.path.kind != "direct":
            findings.append(problem(f"site upstream {node.name}", _why_not_direct(node.path)))
    for upstream in report.missing_upstreams:
        findings.append(
            problem(
                f"site upstream {upstream}",
                "not in this node's tailnet (not joined to Headscale, or registered under "
                "another name)",
            )
        )
    findings += [problem("Headscale journal", str(rejection)) for rejection in report.rejections]
    findings += [warning("tailscaled", message) for message in status.get("Health") or []]
    if peer_versions is None and len(report.nodes) > 1:
        findings.append(
            note("peers", "client versions not read (they come from `tailscale whois`)")
        )
    return findings


def _why_not_direct(path: PathVerdict) -> str:
    if path.kind == "offline":
        return "offline (not connected to Headscale)"
    if path.kind == "idle":
        return "idle, no current path even after a ping"
    if path.kind == "peer-relay":
        return f"{path}, not direct"
    return f"{path}, not direct (is UDP 41641 open on both sides?)"
