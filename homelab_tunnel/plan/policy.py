"""What a change of site policy opens up: one line per site that is more public after it.

Pure: it compares two lists of site documents (render/sites.py), the one the
edge runs and the one a plan would give it. Exposure, as in the rest of
plan-summary, is "reachable by more of the internet than before":

- a login gate (basic or forward auth) removed;
- allow_cidrs removed (everyone) or widened (a network not inside the old ones);
- `crawlers = "block-ai"` switched off.

Decided, and said in docs/configuration/site-policy.md: only sites present on both sides are judged.
A new site is not the exposure of an existing one (the plan shows its new DNS
record; `check` shows its policy), and a removed site exposes nothing. A gate
swapped for another (basic for forward auth), users added to a gate, or HSTS
switched off change who gets in, not whether a gate stands, and are not
reported. Documents from an older release may lack the policy keys: a missing
key reads as its default (no gate, no allowlist, crawlers allowed).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from typing import Any

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def policy_exposures(
    before: Sequence[dict[str, Any]], after: Sequence[dict[str, Any]]
) -> list[str]:
    """One line per site (by domain) that the change makes more public, in `after`'s order."""
    old = {document["domain"]: document for document in before}
    lines = []
    for document in after:
        previous = old.get(document["domain"])
        if previous is None:
            continue
        opened = list(_opened(previous, document))
        if opened:
            lines.append(f"{document['domain']} {_now(document)}: {'; '.join(opened)}")
    return lines


def _opened(before: dict[str, Any], after: dict[str, Any]) -> Iterable[str]:
    gate, new_gate = before.get("auth"), after.get("auth")
    if gate and not new_gate:
        yield f"its {gate.get('kind', 'login')}-auth gate is removed"
    cidrs, new_cidrs = before.get("allow_cidrs") or [], after.get("allow_cidrs") or []
    if cidrs and not new_cidrs:
        yield f"allow_cidrs is removed (it was {', '.join(cidrs)}): every address may connect"
    elif cidrs:
        added = _outside(new_cidrs, cidrs)
        if added:
            yield f"allow_cidrs lets in more: {', '.join(added)}"
    if before.get("crawlers") == "block-ai" and after.get("crawlers", "allow") != "block-ai":
        yield "AI crawlers are no longer blocked"


def _now(after: dict[str, Any]) -> str:
    if not after.get("auth") and not after.get("allow_cidrs"):
        return "is now public"
    return "is more exposed"


def _outside(networks: list[str], old: list[str]) -> list[str]:
    """The networks of `networks` that reach beyond all of `old` together."""
    parsed = [ipaddress.ip_network(cidr) for cidr in old]
    covering: list[_Network] = [
        *ipaddress.collapse_addresses(n for n in parsed if n.version == 4),
        *ipaddress.collapse_addresses(n for n in parsed if n.version == 6),
    ]
    return [
        cidr
        for cidr in networks
        if not any(_within(ipaddress.ip_network(cidr), other) for other in covering)
    ]


def _within(network: _Network, other: _Network) -> bool:
    return network.version == other.version and network.subnet_of(other)  # type: ignore[arg-type]
