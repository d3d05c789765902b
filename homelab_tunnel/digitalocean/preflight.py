"""Preflight: will this config deploy into this DigitalOcean account?

Validation (config.py) never touches the network; this does, on request, and
checks what only the account knows: the token works, the SSH keys and the DNS
zone exist (or the zone to be created does not), the region offers the size
and block storage, and no record already sits where the stack will write one.
Meant for before the first apply: once the edge exists, its own records and
volume are reported as being in the way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol

from homelab_tunnel.config import TunnelConfig
from homelab_tunnel.digitalocean.api import ApiError
from homelab_tunnel.findings import Finding, ok, problem

# Record types that must not already exist at a name the stack writes A/AAAA/CAA to:
# a second A/AAAA splits traffic, a CNAME cannot share a name, a foreign CAA
# widens who may issue certificates.
CLASHING_TYPES = ("A", "AAAA", "CAA", "CNAME")


class Api(Protocol):
    """What preflight reads; `digitalocean.api.DigitalOceanApi` is the real one."""

    def account(self) -> dict[str, Any]: ...
    def ssh_keys(self) -> list[dict[str, Any]]: ...
    def domain(self, name: str) -> dict[str, Any] | None: ...
    def records(self, zone: str) -> list[dict[str, Any]]: ...
    def regions(self) -> list[dict[str, Any]]: ...
    def volumes(self, name: str, region: str) -> list[dict[str, Any]]: ...


def run_preflight(config: TunnelConfig, api: Api) -> list[Finding]:
    """Every check in order; stops early only when the API itself cannot be used."""
    results: list[Finding] = []
    steps: list[tuple[str, Callable[[], Iterable[Finding]]]] = [
        ("token", lambda: _token(api)),
        ("ssh_keys", lambda: _ssh_keys(config, api)),
        ("dns.zone", lambda: _zone_and_records(config, api)),
        ("region", lambda: _region(config, api)),
        ("volume", lambda: _volume(config, api)),
    ]
    for name, step in steps:
        try:
            results.extend(step())
        except ApiError as exc:
            results.append(problem(name, exc.message))
            if exc.fatal:
                results.append(problem("preflight", "stopped: the remaining checks need the API"))
                break
    return results


# ---------------------------------------------------------------------------
# The checks
# ---------------------------------------------------------------------------


def _token(api: Api) -> Iterable[Finding]:
    account = api.account()
    who = account.get("email") or account.get("uuid") or "unknown account"
    status = account.get("status", "active")
    if status != "active":
        detail = account.get("status_message") or "see the control panel"
        yield problem(
            "token",
            f"the token works but account {who} is {status} ({detail}); "
            "DigitalOcean refuses new resources until that is resolved",
        )
        return
    yield ok("token", f"works (account {who}, {status})")


def _ssh_keys(config: TunnelConfig, api: Api) -> Iterable[Finding]:
    if not config.ssh_keys:
        yield ok("ssh_keys", "none configured (use the DigitalOcean console to log in)")
        return
    keys = api.ssh_keys()
    by_fingerprint = {key.get("fingerprint") for key in keys}
    problems = False
    for fingerprint in config.ssh_key_fingerprints():
        if fingerprint not in by_fingerprint:
            problems = True
            yield problem(
                "ssh_keys",
                f"no key with fingerprint {fingerprint} in this account; add the public key "
                "under Settings > Security, or correct the fingerprint",
            )
    for name in config.ssh_key_names():
        found = [key for key in keys if key.get("name") == name]
        if not found:
            problems = True
            yield problem(
                "ssh_keys",
                f"no key named {name!r} in this account (names are case-sensitive); add it "
                "under Settings > Security, or use its fingerprint",
            )
        elif len(found) > 1:
            problems = True
            yield problem(
                "ssh_keys",
                f"{len(found)} keys are named {name!r}; the stack looks keys up by name and "
                "needs exactly one: rename the others or use the fingerprint",
            )
    if not problems:
        yield ok("ssh_keys", f"all {len(config.ssh_keys)} found ({', '.join(config.ssh_keys)})")


def _zone_and_records(config: TunnelConfig, api: Api) -> Iterable[Finding]:
    zone = config.dns.zone
    exists = api.domain(zone) is not None
    if config.dns.create_zone:
        if exists:
            yield problem(
                "dns.zone",
                f"{zone} already exists in this account but dns.create_zone is true; set "
                "dns.create_zone = false to use it (creating it again fails)",
            )
        else:
            yield ok("dns.zone", f"{zone} does not exist yet; the stack creates it")
        return
    if not exists:
        yield problem(
            "dns.zone",
            f"{zone} is not a DNS zone in this account; add it under Networking > Domains "
            "(and delegate it to ns1-3.digitalocean.com), or set dns.create_zone = true",
        )
        return
    yield ok("dns.zone", f"{zone} exists")
    yield from _records(config, api.records(zone))


def _records(config: TunnelConfig, existing: list[dict[str, Any]]) -> Iterable[Finding]:
    names = {config.record_name(domain): domain for domain in config.domains}
    clashes = [
        record
        for record in existing
        if record.get("name") in names and record.get("type") in CLASHING_TYPES
    ]
    for record in sorted(clashes, key=lambda r: (str(r.get("name")), str(r.get("type")))):
        fqdn = names[str(record["name"])]
        yield problem(
            "dns.records",
            f"{fqdn} already has a {record['type']} record ({record.get('data')!r}, "
            f"id {record.get('id')}); {_why(str(record['type']))}: delete it before the "
            "first apply",
        )
    if not clashes:
        yield ok(
            "dns.records",
            f"no {'/'.join(CLASHING_TYPES)} records yet at {', '.join(sorted(names))} "
            f"({len(existing)} records in the zone)",
        )


def _why(record_type: str) -> str:
    return {
        "A": "a second A record would send some visitors elsewhere",
        "AAAA": "IPv6 visitors would go to that address instead of the edge",
        "CAA": "it would widen or contradict the Let's Encrypt-only CAA record",
        "CNAME": "a CNAME cannot share its name with the stack's records",
    }[record_type]


def _region(config: TunnelConfig, api: Api) -> Iterable[Finding]:
    regions = {region.get("slug"): region for region in api.regions()}
    region = regions.get(config.region)
    if region is None:
        yield problem(
            "region",
            f"{config.region} is not a region of this account; available: "
            + ", ".join(sorted(str(slug) for slug, r in regions.items() if r.get("available"))),
        )
        return
    if not region.get("available"):
        yield problem(
            "region", f"{config.region} does not accept new resources now; pick another region"
        )
        return
    yield ok("region", f"{config.region} ({region.get('name', config.region)}) is available")
    sizes = region.get("sizes") or []
    if config.size in sizes:
        yield ok("size", f"{config.size} is offered in {config.region}")
    else:
        yield problem(
            "size",
            f"{config.size} is not offered in {config.region}; sizes there include "
            + ", ".join(sorted(sizes)[:8]),
        )
    if "storage" in (region.get("features") or []):
        yield ok("block storage", f"{config.region} offers volumes")
    else:
        yield problem(
            "block storage",
            f"{config.region} offers no block storage, which holds the edge's state; "
            "pick a region whose features include storage",
        )


def _volume(config: TunnelConfig, api: Api) -> Iterable[Finding]:
    found = api.volumes(config.volume_name, config.region)
    if not found:
        yield ok("volume", f"the name {config.volume_name} is free in {config.region}")
        return
    volume_id = found[0].get("id")
    yield problem(
        "volume",
        f"a volume named {config.volume_name} already exists in {config.region} (id "
        f"{volume_id}); if it holds this edge's state, import it (terraform import "
        f"digitalocean_volume.state {volume_id}), otherwise rename the stack",
    )
