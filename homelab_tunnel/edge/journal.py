"""Headscale's journal: every "unsupported client version" refusal, grouped by client.

A refused client looks like a healthy node that merely relays; only
Headscale's log says why. This is the seed incident's fingerprint.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from homelab_tunnel.edge import versions

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
