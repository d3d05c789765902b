"""Real-shaped tailnet evidence for tests: status, whois and journal fixtures, judged."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from homelab_tunnel.edge.status import parse_status, parse_whois
from homelab_tunnel.edge.verdicts import Report, diagnose
from support.config import DATA

TAILSCALE = DATA / "tailscale"
HEADSCALE = DATA / "headscale"
HOMELAB = "homelab.tail.example.net"
# The fixtures were captured as of this moment; key expiry is judged against it.
FIXTURE_TIME = datetime(2026, 8, 23, 9, 15, tzinfo=UTC)


def status_fixture(name: str) -> dict[str, Any]:
    return parse_status((TAILSCALE / f"status-{name}.json").read_text())


def whois_fixture(name: str) -> dict[str, str]:
    return parse_whois((TAILSCALE / f"whois-{name}.json").read_text())


def diagnose_fixture(
    status: str | dict[str, Any],
    *,
    upstreams: tuple[str, ...] = (HOMELAB,),
    whois: str | dict[str, str] | None = "homelab",
    journal: str | None = None,
    headscale: str = "0.29.2",
) -> Report:
    return diagnose(
        status_fixture(status) if isinstance(status, str) else status,
        upstreams=upstreams,
        headscale_version=headscale,
        now=FIXTURE_TIME,
        peer_versions=whois_fixture(whois) if isinstance(whois, str) else whois,
        journal=(HEADSCALE / journal).read_text() if journal else None,
    )
