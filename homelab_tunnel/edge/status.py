"""Reading `tailscale status --json` and `tailscale whois --json` (ipn/ipnstate field names).

Every malformed field is a `SourceError` naming it, so a truncated or foreign
document is reported as bad input rather than judged.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


class SourceError(ValueError):
    """Input that is not what it claims to be (status, whois JSON); the CLI exits 2."""


def parse_json(text: str, what: str) -> Any:
    """JSON, or `SourceError`: also for documents nested too deep to read."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise SourceError(f"not JSON ({exc})") from None
    except RecursionError:
        raise SourceError(f"not {what} (JSON nested too deeply)") from None


def parse_status(text: str) -> dict[str, Any]:
    """The status document; `SourceError` when it is not JSON or not a status."""
    document = parse_json(text.lstrip("\ufeff"), "`tailscale status --json` output")
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


def peers(status: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(node key, peer) pairs, sorted by name so reports are stable."""
    found: Mapping[str, Mapping[str, Any]] = status.get("Peer") or {}
    yield from sorted(found.items(), key=lambda item: name_of(item[1]))


def peer_addresses(status: Mapping[str, Any]) -> list[str]:
    """Each peer's first tailnet address: what `tailscale whois` takes."""
    addresses = []
    for key, peer in peers(status):
        ips = strings(peer, "TailscaleIPs", key)
        if ips:
            addresses.append(ips[0])
    return addresses


# A key missing from a peer (older clients lack PeerRelay) reads as empty.
def text(peer: Mapping[str, Any], name: str, where: str) -> str:
    value = peer.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise SourceError(f"Peer[{where}].{name}: expected a string, got {value!r}")
    return value


def flag(peer: Mapping[str, Any], name: str, where: str) -> bool:
    value = peer.get(name, False)
    if not isinstance(value, bool):
        raise SourceError(f"Peer[{where}].{name}: expected true or false, got {value!r}")
    return value


def strings(peer: Mapping[str, Any], name: str, where: str) -> list[str]:
    value = peer.get(name) or []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise SourceError(f"Peer[{where}].{name}: expected a list of strings")
    return value


def name_of(peer: Mapping[str, Any]) -> str:
    dns = peer.get("DNSName")
    host = peer.get("HostName")
    if isinstance(dns, str) and dns:
        return dns.removesuffix(".")
    return host if isinstance(host, str) else ""


def time_of(peer: Mapping[str, Any], name: str, where: str) -> datetime | None:
    """A Go time.Time: RFC 3339 with up to nanoseconds; the zero time means unset."""
    value = text(peer, name, where)
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise SourceError(f"Peer[{where}].{name}: {value!r} is not an RFC 3339 time") from None
    if when.year <= 1:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


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
    if not flag(peer, "Online", where):
        return PathVerdict("offline")
    if not flag(peer, "Active", where):
        return PathVerdict("idle")
    if endpoint := text(peer, "CurAddr", where):
        return PathVerdict("direct", endpoint)
    if relay := text(peer, "PeerRelay", where):
        return PathVerdict("peer-relay", relay)
    return PathVerdict("derp", text(peer, "Relay", where))


def parse_whois(document_text: str) -> dict[str, str]:
    """Tailnet address -> client version, from one or more concatenated whois documents.

    `Node.Hostinfo.IPNVersion` is the version the peer reported to Headscale
    (e.g. "1.36.0-t1234abcd-g5678ef90"); `Node.Addresses` are its prefixes.
    """
    decoder = json.JSONDecoder()
    found: dict[str, str] = {}
    position = 0
    source = document_text.lstrip("\ufeff")
    while True:
        while position < len(source) and source[position].isspace():
            position += 1
        if position >= len(source):
            return found
        try:
            document, position = decoder.raw_decode(source, position)
        except json.JSONDecodeError as exc:
            raise SourceError(f"not `tailscale whois --json` output ({exc})") from None
        except RecursionError:
            raise SourceError("not `tailscale whois --json` output (nested too deeply)") from None
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
