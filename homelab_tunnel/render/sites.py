"""Each site as a plain document: where it goes and who may reach it, never a secret.

One shape for everything that reports on sites: `check`'s table, and the
per-site list the edge's config carries, from which plan-summary tells what
a change opens up (plan/policy.py). Password hashes never appear: a login
gate is its kind and its user names.
"""

from __future__ import annotations

from typing import Any

from homelab_tunnel.config import Site, TunnelConfig


def site_document(config: TunnelConfig, site: Site) -> dict[str, Any]:
    """A site and its policy, JSON-ready, without the password hashes."""
    return {
        "domain": site.domain,
        "upstream": config.upstream_host(site),
        "port": site.port,
        "scheme": site.scheme,
        "allow_cidrs": list(site.allow_cidrs),
        "crawlers": site.crawlers,
        "auth": _auth(config, site),
        "hsts": site.hsts,
    }


def site_documents(config: TunnelConfig) -> list[dict[str, Any]]:
    return [site_document(config, site) for site in config.sites]


def _auth(config: TunnelConfig, site: Site) -> dict[str, Any] | None:
    if site.auth is None:
        return None
    if site.auth.basic is not None:
        return {"kind": "basic", "users": [login.user for login in site.auth.basic]}
    forward = site.auth.forward
    assert forward is not None  # SiteAuth holds exactly one
    return {
        "kind": "forward",
        "upstream": config.machine_host(forward.upstream),
        "port": forward.port,
        "path": forward.path,
        "copy_headers": list(forward.copy_headers),
    }


def describe_policy(document: dict[str, Any]) -> str:
    """One line for a person: `open`, or what stands between the internet and the site."""
    parts = []
    if document.get("allow_cidrs"):
        parts.append("only " + ", ".join(document["allow_cidrs"]))
    if document.get("crawlers") == "block-ai":
        parts.append("AI crawlers blocked")
    auth = document.get("auth")
    if auth and auth.get("kind") == "basic":
        parts.append(f"basic auth ({', '.join(auth['users'])})")
    elif auth:
        parts.append(f"forward auth ({auth['upstream']}:{auth['port']}{auth['path']})")
    if document.get("hsts"):
        parts.append("HSTS")
    return "; ".join(parts) or "open to everyone"
