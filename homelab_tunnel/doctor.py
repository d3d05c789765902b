"""Is every site upstream reached directly, and is every client one Headscale accepts?

Reads `tailscale status --json` (path per peer), `tailscale whois --json` (each
peer's client version; status has none) and Headscale's journal ("unsupported
client version" rejections), and turns them into verdicts.

Standard library only, importing nothing from the project but versions.py: the
same file runs on the edge (/usr/local/lib/homelab-tunnel) as the health timer,
`python3 -m homelab_tunnel.doctor health`, where nothing else is installed.
"""

from __future__ import annotations

import argparse
import http.client
import ipaddress
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from homelab_tunnel import versions
from homelab_tunnel.versions import Version, client_supported, parse_version

KEY_EXPIRY_WARNING = timedelta(days=7)
WEBHOOK_TIMEOUT = 10.0
# The timer runs every 5 minutes, give or take its 1 minute accuracy: each run
# reads the journal since the previous one could have started.
HEALTH_JOURNAL_SINCE = "-6min"


class SourceError(ValueError):
    """Input that is not what it claims to be (status, whois JSON); the CLI exits 2."""


# ---------------------------------------------------------------------------
# Commands run on the edge (locally by the timer, over ssh by the CLI)
# ---------------------------------------------------------------------------

STATUS_COMMAND = ("tailscale", "status", "--json")


def ping_command(upstream: str) -> tuple[str, ...]:
    """One disco ping: starts path discovery so an idle upstream gets a current path."""
    return ("tailscale", "ping", "-c", "1", "--timeout", "5s", _ping_target(upstream))


def _ping_target(upstream: str) -> str:
    """The upstream as `tailscale ping` finds it among its peers.

    It matches a peer by short name or by the full DNSName, trailing dot
    included (cmd/tailscale/cli/ping.go, `tailscaleIPFromArg`); any other name
    goes to the system resolver, which on the edge (--accept-dns=false) knows
    no MagicDNS names, and the ping fails before warming anything.
    """
    try:
        ipaddress.ip_address(upstream)
    except ValueError:
        if "." in upstream and not upstream.endswith("."):
            return upstream + "."
    return upstream


def whois_command(address: str) -> tuple[str, ...]:
    return ("tailscale", "whois", "--json", address)


def journal_command(since: str) -> tuple[str, ...]:
    return ("journalctl", "-u", "headscale", "--since", since, "-o", "cat", "--no-pager")


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str
    stderr: str


Runner = Callable[[Sequence[Sequence[str]], float], Result]
"""Runs a batch of commands on the edge; stdout concatenated, the last exit code."""


def run_local(commands: Sequence[Sequence[str]], timeout: float) -> Result:
    """The timer's runner: each command in turn on this machine, all within `timeout`."""
    deadline = time.monotonic() + timeout
    stdout: list[str] = []
    stderr: list[str] = []
    code = 0
    for argv in commands:
        left = max(deadline - time.monotonic(), 1.0)
        try:
            done = subprocess.run(
                list(argv), capture_output=True, text=True, timeout=left, check=False
            )
        except FileNotFoundError:
            stderr.append(f"{argv[0]}: command not found\n")
            code = 127
            continue
        except OSError as exc:  # e.g. not executable
            stderr.append(f"{argv[0]}: {exc.strerror or exc}\n")
            code = 126
            continue
        except subprocess.TimeoutExpired:
            stderr.append(f"{' '.join(argv)}: no answer within {left:.0f}s\n")
            code = 124
            continue
        stdout.append(done.stdout)
        stderr.append(done.stderr)
        code = done.returncode
    return Result(code, "".join(stdout), "".join(stderr))


@dataclass(frozen=True)
class Evidence:
    """What was read on the edge, before any judgement."""

    status: str
    whois: str = ""
    journal: str | None = None
    notes: tuple[str, ...] = ()


def collect(
    run: Runner, *, upstreams: Sequence[str], journal_since: str | None, source: str
) -> Evidence:
    """Warm each upstream's path, then read status, every peer's whois and the journal."""
    if upstreams:
        run([ping_command(upstream) for upstream in upstreams], 15.0 * len(upstreams))
    status = run([STATUS_COMMAND], 30.0)
    if status.returncode != 0:
        raise SourceError(f"`tailscale status --json` failed on {source}: {_last_line(status)}")
    notes: list[str] = []
    addresses = _peer_addresses(parse_status(status.stdout))
    whois = Result(0, "", "")
    if addresses:
        whois = run([whois_command(address) for address in addresses], 5.0 * len(addresses) + 10)
    journal: str | None = None
    if journal_since is not None:
        read = run([journal_command(journal_since)], 30.0)
        if read.returncode == 0:
            journal = read.stdout
        else:
            notes.append(f"Headscale journal not read on {source}: {_last_line(read)}")
    return Evidence(status.stdout, whois.stdout, journal, tuple(notes))


def _last_line(result: Result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    return lines[-1].strip() if lines else f"exit code {result.returncode}"


# ---------------------------------------------------------------------------
# Reading `tailscale status --json` (field names from ipn/ipnstate/ipnstate.go)
# ---------------------------------------------------------------------------


def parse_status(text: str) -> dict[str, Any]:
    """The status document; `SourceError` when it is not JSON or not a status."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SourceError(f"not JSON ({exc})") from None
    if not isinstance(document, dict) or not isinstance(document.get("BackendState"), str):
        raise SourceError("not `tailscale status --json` output (no BackendState)")
    peers = document.get("Peer")
    if peers is not None and (
        not isinstance(peers, dict) or not all(isinstance(p, dict) for p in peers.values())
    ):
        raise SourceError("Peer: expected an object of peers keyed by node key")
    if document.get("Self") is not None and not isinstance(document["Self"], dict):
        raise SourceError("Self: expected an object")
    if not isinstance(document.get("Version") or "", str):
        raise SourceError("Version: expected a string")
    health = document.get("Health") or []
    if not isinstance(health, list) or not all(isinstance(item, str) for item in health):
        raise SourceError("Health: expected a list of strings")
    return document


def _peers(status: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    peers: Mapping[str, Mapping[str, Any]] = status.get("Peer") or {}
    yield from sorted(peers.items(), key=lambda item: _name(item[1]))


def _peer_addresses(status: Mapping[str, Any]) -> list[str]:
    addresses = []
    for key, peer in _peers(status):
        ips = _strings(peer, "TailscaleIPs", key)
        if ips:
            addresses.append(ips[0])
    return addresses


# A key missing from a peer (older clients lack PeerRelay) reads as empty.
def _text(peer: Mapping[str, Any], name: str, where: str) -> str:
    value = peer.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise SourceError(f"Peer[{where}].{name}: expected a string, got {value!r}")
    return value


def _flag(peer: Mapping[str, Any], name: str, where: str) -> bool:
    value = peer.get(name, False)
    if not isinstance(value, bool):
        raise SourceError(f"Peer[{where}].{name}: expected true or false, got {value!r}")
    return value


def _strings(peer: Mapping[str, Any], name: str, where: str) -> list[str]:
    value = peer.get(name) or []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise SourceError(f"Peer[{where}].{name}: expected a list of strings")
    return value


def _name(peer: Mapping[str, Any]) -> str:
    dns = peer.get("DNSName")
    host = peer.get("HostName")
    if isinstance(dns, str) and dns:
        return dns.removesuffix(".")
    return host if isinstance(host, str) else ""


def _time(peer: Mapping[str, Any], name: str, where: str) -> datetime | None:
    """A Go time.Time: RFC 3339 with up to nanoseconds; the zero time means unset."""
    text = _text(peer, name, where)
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise SourceError(f"Peer[{where}].{name}: {text!r} is not an RFC 3339 time") from None
    if when.year <= 1:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


# ---------------------------------------------------------------------------
# Verdicts
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PathVerdict:
    """How traffic to a peer flows right now."""

    kind: str  # "direct" | "derp" | "peer-relay" | "idle" | "offline"
    via: str = ""  # endpoint, DERP region code or peer relay address

    def __str__(self) -> str:
        if self.kind == "direct":
            return f"direct {self.via}"
        if self.kind == "derp":
            return f"via DERP region {self.via or '?'}"
        if self.kind == "peer-relay":
            return f"via peer relay {self.via}"
        return self.kind


def path_of(peer: Mapping[str, Any], where: str = "?") -> PathVerdict:
    """Tailscale ≥ 1.86 rules, as `tailscale status` prints them.

    Offline first; an inactive peer has no current path at all; `CurAddr` is a
    direct path and `PeerRelay` a peer relay. Otherwise an active peer relays
    through DERP region `Relay`, which is the peer's home region and is set even
    when the path is direct, so it decides nothing on its own.
    """
    if not _flag(peer, "Online", where):
        return PathVerdict("offline")
    if not _flag(peer, "Active", where):
        return PathVerdict("idle")
    if endpoint := _text(peer, "CurAddr", where):
        return PathVerdict("direct", endpoint)
    if relay := _text(peer, "PeerRelay", where):
        return PathVerdict("peer-relay", relay)
    return PathVerdict("derp", _text(peer, "Relay", where))


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


@dataclass(frozen=True)
class Rejection:
    """Headscale refused a client for its version; counted per client kind."""

    client_version: str  # as Headscale logged it ("v1.36"), or "" when it had no name
    capver: int | None
    count: int
    example: str

    @property
    def client(self) -> str:
        if self.client_version:
            return f"Tailscale {self.client_version.removeprefix('v')}"
        named = versions.tailscale_for_capver(self.capver) if self.capver is not None else None
        return f"Tailscale {named}" if named else "an unnamed client"

    def __str__(self) -> str:
        capver = f" (capability version {self.capver})" if self.capver is not None else ""
        times = "1 log line" if self.count == 1 else f"{self.count} log lines"
        return f"Headscale rejected {self.client}{capver} as unsupported ({times})"

    def to_json(self) -> dict[str, Any]:
        return {
            "client_version": self.client_version,
            "capver": self.capver,
            "client": self.client,
            "count": self.count,
            "example": self.example,
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
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

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
        return f"{len(self.problems)} problem(s), {len(self.warnings)} warning(s)"

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "headscale_version": self.headscale_version,
            "min_tailscale": str(self.minimum) if self.minimum else None,
            "backend_state": self.backend_state,
            "site_upstreams": self.upstreams,
            "missing_upstreams": self.missing_upstreams,
            "nodes": [node.to_json() for node in self.nodes],
            "rejections": [rejection.to_json() for rejection in self.rejections],
            "problems": self.problems,
            "warnings": self.warnings,
            "notes": self.notes,
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
    """Every verdict, problem and warning for one `tailscale status --json` document.

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
    if minimum is None:
        report.warnings.append(
            f"Headscale {headscale_version} is not in the version table; "
            "client versions are not judged"
        )
    if report.backend_state != "Running":
        report.problems.append(
            f"this node's tailscaled is {report.backend_state}, not Running "
            "(not logged in to Headscale, or refused by it)"
        )
    self_peer = status.get("Self") or {}
    report.nodes.append(
        _node(self_peer, "self", now, minimum, version=str(status.get("Version") or ""), path=None)
    )
    found: set[str] = set()
    for key, peer in _peers(status):
        matched = [up for up in upstreams if _matches(peer, up, key)]
        found.update(matched)
        ips = _strings(peer, "TailscaleIPs", key)
        known = peer_versions.get(ips[0], "") if peer_versions and ips else ""
        report.nodes.append(
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
    report.missing_upstreams = [up for up in upstreams if up not in found]
    if peer_versions is None and len(report.nodes) > 1:
        report.notes.append("peer client versions not read (they come from `tailscale whois`)")
    for message in status.get("Health") or []:
        report.warnings.append(f"tailscaled: {message}")
    _judge(report)
    return report


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
    expiry = _time(peer, "KeyExpiry", where)
    note = ""
    if _flag(peer, "Expired", where) or (expiry is not None and expiry <= now):
        note = "expired"
    elif expiry is not None and expiry - now <= KEY_EXPIRY_WARNING:
        days = (expiry - now).days
        note = "expires today" if days == 0 else f"expires in {days} day(s)"
    return NodeReport(
        name=_name(peer) or where,
        addresses=tuple(_strings(peer, "TailscaleIPs", where)),
        os=_text(peer, "OS", where),
        path=path,
        version=str(parsed) if parsed else (version or None),
        supported=supported,
        key_expiry=expiry,
        key_note=note,
        upstream=upstream,
    )


def _matches(peer: Mapping[str, Any], upstream: str, where: str) -> bool:
    """An upstream names a peer by MagicDNS name, its first label, host name or address."""
    wanted = upstream.lower().removesuffix(".")
    dns = _text(peer, "DNSName", where).lower().removesuffix(".")
    names = {dns, dns.split(".", 1)[0], _text(peer, "HostName", where).lower()}
    names.update(_strings(peer, "TailscaleIPs", where))
    names.discard("")
    return wanted in names


def _judge(report: Report) -> None:
    minimum = report.minimum.series if report.minimum else "?"
    for node in report.nodes:
        who = "this node" if node.path is None else node.name
        if node.supported is False:
            report.problems.append(
                f"{who} runs Tailscale {node.version}; Headscale {report.headscale_version} "
                f"accepts {minimum} or newer: upgrade it from Tailscale's official repository"
            )
        if node.key_note:
            report.warnings.append(f"{who}: node key {node.key_note}")
        if node.upstream and node.path is not None and node.path.kind != "direct":
            report.problems.append(f"site upstream {node.name}: {_why_not_direct(node.path)}")
    for upstream in report.missing_upstreams:
        report.problems.append(
            f"site upstream {upstream} is not in this node's tailnet "
            "(not joined to Headscale, or registered under another name)"
        )
    for rejection in report.rejections:
        report.problems.append(str(rejection))


def _why_not_direct(path: PathVerdict) -> str:
    if path.kind == "offline":
        return "offline (not connected to Headscale)"
    if path.kind == "idle":
        return "idle, no current path even after a ping"
    if path.kind == "peer-relay":
        return f"{path}, not direct"
    return f"{path}, not direct (is UDP 41641 open on both sides?)"


# ---------------------------------------------------------------------------
# Client versions from `tailscale whois --json`
# ---------------------------------------------------------------------------


def parse_whois(text: str) -> dict[str, str]:
    """Tailnet address -> client version, from one or more concatenated whois documents.

    `Node.Hostinfo.IPNVersion` is the version the peer reported to Headscale
    (e.g. "1.36.0-t1234abcd-g5678ef90"); `Node.Addresses` are its prefixes.
    """
    decoder = json.JSONDecoder()
    found: dict[str, str] = {}
    position = 0
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        if position >= len(text):
            return found
        try:
            document, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError as exc:
            raise SourceError(f"not `tailscale whois --json` output ({exc})") from None
        node = document.get("Node") if isinstance(document, dict) else None
        if not isinstance(node, dict):
            raise SourceError("not `tailscale whois --json` output (no Node)")
        hostinfo = node.get("Hostinfo") or {}
        version = hostinfo.get("IPNVersion") if isinstance(hostinfo, dict) else None
        if not isinstance(version, str) or not version:
            continue
        for prefix in node.get("Addresses") or []:
            if isinstance(prefix, str):
                found[prefix.split("/", 1)[0]] = version


# ---------------------------------------------------------------------------
# Headscale's journal: "unsupported client version" rejections
# ---------------------------------------------------------------------------

# Logged by the Noise upgrade (hscontrol/noise.go) as
#   ERR http internal server error error="upgrading noise connection: unsupported
#   client version: v1.36 (56)" code=500
# with an empty name when that Headscale's map lacks the capability version
# ("unsupported client version:  (56)"), or as a JSON object with log.format: json.
_VERSION_ERROR = re.compile(r"unsupported client version: (v\d+\.\d+(?:\.\d+)?)? \((\d+)\)")
# rejectUnsupported(): "unsupported client connected client_cap_ver=56 client_version=v1.36 ..."
# or {"client_cap_ver":56,"client_version":"v1.36",...,"message":"unsupported client connected"}
_CONNECTED = "unsupported client connected"
_CAPVER_FIELD = re.compile(r'"?client_cap_ver"?[=:]\s*(\d+)')
_VERSION_FIELD = re.compile(r'"?client_version"?[=:]\s*"?(v\d+\.\d+(?:\.\d+)?)')


def scan_journal(text: str) -> list[Rejection]:
    """Every unsupported-client rejection in Headscale's log, grouped by client."""
    groups: dict[tuple[str, int | None], Rejection] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if "unsupported client" not in line:
            continue
        key = _rejected_client(line)
        seen = groups.get(key)
        groups[key] = Rejection(
            client_version=key[0],
            capver=key[1],
            count=(seen.count if seen else 0) + 1,
            example=seen.example if seen else line[:300],
        )
    return list(groups.values())


def _rejected_client(line: str) -> tuple[str, int | None]:
    if match := _VERSION_ERROR.search(line):
        return match.group(1) or "", int(match.group(2))
    if _CONNECTED in line:
        capver = _CAPVER_FIELD.search(line)
        version = _VERSION_FIELD.search(line)
        return (version.group(1) if version else "", int(capver.group(1)) if capver else None)
    # Any other wording of the same refusal is still reported, unnamed.
    return "", None


# ---------------------------------------------------------------------------
# Health mode: the edge's timer
# ---------------------------------------------------------------------------


def health(env: Mapping[str, str], run: Runner = run_local, now: datetime | None = None) -> int:
    """One health run on the edge: journal lines, an optional webhook, exit 1 on problems."""
    upstreams = env.get("HEALTH_UPSTREAMS", "").split()
    headscale_version = env.get("HEADSCALE_VERSION") or versions.HEADSCALE_VERSION
    try:
        parse_version(headscale_version)
    except ValueError as exc:
        print(f"warning: HEADSCALE_VERSION: {exc}; judging against {versions.HEADSCALE_VERSION}")
        headscale_version = versions.HEADSCALE_VERSION
    host = socket.gethostname()
    try:
        evidence = collect(
            run, upstreams=upstreams, journal_since=HEALTH_JOURNAL_SINCE, source=host
        )
        status = parse_status(evidence.status)
        report = diagnose(
            status,
            upstreams=upstreams,
            headscale_version=headscale_version,
            now=now or datetime.now(UTC),
            peer_versions=parse_whois(evidence.whois),
            journal=evidence.journal,
        )
        report.warnings.extend(evidence.notes)
        problems, warnings, summary = report.problems, report.warnings, report.summary()
    except SourceError as exc:
        problems, warnings = [f"cannot read the tailnet state: {exc}"], []
        summary = "1 problem(s), 0 warning(s)"
    if not upstreams:
        warnings.append("HEALTH_UPSTREAMS is empty: no site upstream is checked")
    for problem in problems:
        print(f"problem: {problem}")
    for warning in warnings:
        print(f"warning: {warning}")
    print(f"homelab-tunnel health: {'problems' if problems else 'ok'}: {summary}")
    url = env.get("HEALTH_WEBHOOK_URL", "").strip()
    if url:
        state = env.get("STATE_DIRECTORY", "").split(":")[0]
        notify(url, host, problems, warnings, Path(state) if state else None)
    return 1 if problems else 0


def notify(
    url: str, host: str, problems: list[str], warnings: list[str], state_dir: Path | None
) -> bool:
    """POST the findings; with a state directory, only when they changed (and on recovery).

    Never raises: a broken webhook must not hide the findings already in the journal.
    """
    findings = [f"problem: {p}" for p in problems] + [f"warning: {w}" for w in warnings]
    marker = state_dir / "last-notified.json" if state_dir else None
    previous = _read_marker(marker)
    if not findings and not previous:
        return False
    if marker is not None and findings == previous:
        print("webhook: findings unchanged since the last notification, not sent")
        return False
    headline = f"{host}: homelab-tunnel health: " + (
        f"{len(problems)} problem(s), {len(warnings)} warning(s)" if findings else "all clear"
    )
    message = {
        "host": host,
        "ok": not problems,
        "problems": problems,
        "warnings": warnings,
        "text": "\n".join([headline, *(f"- {finding}" for finding in findings)]),
    }
    if not post_json(url, message):
        return False
    if marker is not None:
        try:
            marker.write_text(json.dumps(findings), encoding="utf-8")
        except OSError as exc:
            print(f"webhook: cannot remember what was sent ({exc})")
    return True


def _read_marker(marker: Path | None) -> list[str]:
    if marker is None:
        return []
    try:
        stored = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [str(item) for item in stored] if isinstance(stored, list) else []


def post_json(url: str, message: Mapping[str, Any], timeout: float = WEBHOOK_TIMEOUT) -> bool:
    """POST `message` as JSON; log and return False on any failure instead of raising."""
    if not url.startswith(("https://", "http://")):
        print("webhook: HEALTH_WEBHOOK_URL is not an http(s) URL, not sent")
        return False
    request = urllib.request.Request(  # noqa: S310 - scheme checked above
        url,
        data=json.dumps(message).encode(),
        headers={"Content-Type": "application/json", "User-Agent": "homelab-tunnel-health"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            status = response.status
    except urllib.error.HTTPError as exc:
        print(f"webhook: POST failed with HTTP {exc.code}")
        return False
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
        print(f"webhook: POST failed: {getattr(exc, 'reason', exc)}")
        return False
    print(f"webhook: sent (HTTP {status})")
    return True


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 -m homelab_tunnel.doctor",
        description="Tailnet health checks that run on the edge.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "health",
        help="warm each upstream's path, judge paths, client versions and Headscale's "
        "journal; configured by HEALTH_UPSTREAMS, HEALTH_WEBHOOK_URL, HEADSCALE_VERSION",
    )
    parser.parse_args(argv)
    return health(os.environ)


if __name__ == "__main__":
    sys.exit(main())
