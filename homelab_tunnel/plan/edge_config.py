"""A change of the edge's config object, in words: which sites and ports come, go or change.

The object's body is the document render/edge_config.py writes; a plan holds
it before and after, in plain text (only its metadata, the MAC and the
webhook, is sensitive). Nothing here trusts it further than to describe it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from homelab_tunnel.plan.model import join


def edge_config(body: Any) -> dict[str, Any] | None:
    """The document in an object's `content`, or None when it is not one of ours."""
    if not isinstance(body, str):
        return None
    try:
        document = json.loads(body)
    except ValueError:
        return None
    if not isinstance(document, dict) or not isinstance(document.get("sites"), list):
        return None
    if not all(isinstance(site, dict) and "domain" in site for site in document["sites"]):
        return None
    return document


def _sites(document: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {str(site["domain"]): site for site in document["sites"]}


def _target(site: Mapping[str, Any]) -> str:
    return f"{site.get('scheme', 'http')}://{site.get('upstream')}:{site.get('port')}"


def site_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """`added a.example.com (-> http://homelab:8080)`, `removed ...`, `b.example.com: port ...`."""
    old, new = _sites(before), _sites(after)
    lines = [f"added {name} (-> {_target(new[name])})" for name in new if name not in old]
    lines += [f"removed {name}" for name in old if name not in new]
    for name in new:
        if name not in old or old[name] == new[name]:
            continue
        keys = [
            key
            for key in sorted(set(old[name]) | set(new[name]))
            if old[name].get(key) != new[name].get(key)
        ]
        what = [f"{key} {old[name].get(key)!r} -> {new[name].get(key)!r}" for key in keys]
        lines.append(f"{name}: {join(what)}")
    return lines


def _scrapers(document: Mapping[str, Any]) -> list[str]:
    metrics = document.get("metrics")
    found = metrics.get("scrapers") if isinstance(metrics, dict) else None
    return [str(name) for name in found] if isinstance(found, list) else []


def scrapers_added(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """Machines that may scrape the edge's metrics after the change and could not before."""
    had = set(_scrapers(before))
    return [name for name in _scrapers(after) if name not in had]


def _ports(document: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """`udp 27015` -> its entry; an object written before ports existed has none."""
    entries = document.get("ports") if isinstance(document.get("ports"), list) else []
    return {
        f"{entry.get('protocol')} {entry.get('port')}": entry
        for entry in entries or []
        if isinstance(entry, dict)
    }


def _to(entry: Mapping[str, Any]) -> str:
    return f"{entry.get('upstream')}:{entry.get('upstream_port')}"


def opened_ports(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """Ports that now reach a machine they did not: new ones, or ones sent elsewhere."""
    old, new = _ports(before), _ports(after)
    lines = [f"forwards {name} to {_to(new[name])}" for name in new if name not in old]
    lines += [
        f"{name} now goes to {_to(new[name])} (was {_to(old[name])})"
        for name in new
        if name in old and _to(new[name]) != _to(old[name])
    ]
    return lines


def closed_ports(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    old, new = _ports(before), _ports(after)
    return [f"stops forwarding {name}" for name in old if name not in new]


def describe(before: Mapping[str, Any], after: Mapping[str, Any]) -> str:
    """One sentence for the plan: versions, then the site and port changes, then the rest."""
    versions = f"config {before.get('version', '?')} -> {after.get('version', '?')}"
    sites = site_changes(before, after) + opened_ports(before, after) + closed_ports(before, after)
    rest = []
    if before.get("machines") != after.get("machines"):
        rest.append("Headscale users for the upstream machines")
    if before.get("metrics") != after.get("metrics"):
        scrapers = ", ".join(_scrapers(after)) or "none"
        port = (after.get("metrics") or {}).get("port", "?")
        rest.append(f"metrics endpoint: scrapers {scrapers}, port {port}")
    files = [
        name
        for name in sorted(set(before.get("files") or {}) | set(after.get("files") or {}))
        if (before.get("files") or {}).get(name) != (after.get("files") or {}).get(name)
    ]
    if not sites and files:
        rest.append(f"{join(files)} changed")
    detail = "; ".join(sites + rest) or "nothing a site sees changes"
    return f"{versions}, applied by the running edge with no downtime: {detail}"
