"""The version gate `check` runs: refuse a config whose clients Headscale would reject.

An edge whose Headscale refuses a client looks healthy until the traffic has
quietly moved to a distant relay; this gate catches the mismatch before deploy.
"""

from __future__ import annotations

from homelab_tunnel.config import TunnelConfig
from homelab_tunnel.edge.versions import (
    MIN_TAILSCALE,
    Version,
    client_supported,
    min_tailscale,
    parse_version,
    upgrade_problem,
)
from homelab_tunnel.errors import InputError
from homelab_tunnel.findings import Finding, ok, problem


def version_gate(config: TunnelConfig, *, upgrade_from: str | None = None) -> list[Finding]:
    """One finding per rule; any problem makes `check` exit 1."""
    headscale = config.headscale.version
    minimum = min_tailscale(headscale)
    results: list[Finding] = []
    if minimum is None:
        known = ", ".join(MIN_TAILSCALE)
        results.append(
            problem(
                "headscale.version",
                f"Headscale {headscale} is not in the version table "
                f"(known: {known}), so the oldest Tailscale client it accepts is unknown; "
                "pin a listed release or add its row to edge/versions.MIN_TAILSCALE",
            )
        )
    else:
        results.append(
            ok(
                "headscale.version",
                f"Headscale {headscale} accepts Tailscale {minimum.series} or newer",
            )
        )
    results.append(_homelab_result(config, minimum))
    if upgrade_from is not None:
        results.append(_upgrade_result(upgrade_from, headscale))
    return results


SUBJECT = "homelab.tailscale_version"


def _homelab_result(config: TunnelConfig, minimum: Version | None) -> Finding:
    declared = config.homelab.tailscale_version
    if declared is None:
        return ok(
            SUBJECT,
            "not set; `homelab-tunnel doctor` checks the real client once it has joined",
        )
    client = parse_version(declared)
    track = " (unstable track)" if client.unstable else ""
    headscale = config.headscale.version
    if minimum is None:
        return problem(
            SUBJECT,
            f"Tailscale {client}{track} cannot be judged against "
            f"Headscale {headscale} (not in the version table)",
        )
    if client_supported(client, minimum):
        return ok(
            SUBJECT,
            f"Tailscale {client}{track} is accepted "
            f"(Headscale {headscale} needs {minimum.series} or newer)",
        )
    return problem(
        SUBJECT,
        f"Tailscale {client}{track} is older than "
        f"{minimum.series}, the oldest client Headscale {headscale} accepts; upgrade the "
        "homelab from Tailscale's official repository (`homelab-tunnel join-command`)",
    )


def _upgrade_result(upgrade_from: str, headscale: str) -> Finding:
    try:
        refused = upgrade_problem(upgrade_from, headscale)
    except ValueError as exc:
        raise InputError("--upgrade-from", [str(exc)]) from None
    if refused is not None:
        return problem("upgrade", refused)
    installed = parse_version(upgrade_from)
    same = installed.series == parse_version(headscale).series
    kind = "same minor release" if same else "one minor release up"
    return ok("upgrade", f"Headscale {installed} -> {headscale} is allowed ({kind})")
