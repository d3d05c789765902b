"""Preflight against a local stand-in of the DigitalOcean API, through the real pydo client."""

from __future__ import annotations

import socket
import time
from typing import Any

from support.config import config_with
from support.fake_digitalocean import (
    FAST,
    FRA1_SIZES,
    TOKEN,
    FakeDigitalOcean,
    record,
    region,
    ssh_key,
)

from homelab_tunnel.config import TunnelConfig
from homelab_tunnel.digitalocean.api import ApiSettings, DigitalOceanApi
from homelab_tunnel.digitalocean.preflight import run_preflight
from homelab_tunnel.findings import Finding, Severity

FINGERPRINT = "3b:16:bf:e4:8b:00:8b:b8:59:8c:a9:d3:f0:19:45:fa"


def _api(fake: FakeDigitalOcean, token: str = TOKEN, **settings: Any) -> DigitalOceanApi:
    return DigitalOceanApi(token, ApiSettings(endpoint=fake.url, **(FAST | settings)))


def _checks(fake: FakeDigitalOcean, config: TunnelConfig | None = None) -> list[Finding]:
    return run_preflight(config or config_with(), _api(fake))


def _problems(checks: list[Finding]) -> list[str]:
    return [check.line() for check in checks if check.severity is Severity.PROBLEM]


# ---------------------------------------------------------------------------
# An account ready for the example config
# ---------------------------------------------------------------------------


def test_ready_account_passes_every_check(fake: FakeDigitalOcean) -> None:
    checks = _checks(fake)
    assert [check.line() for check in checks] == [
        "ok: token: works (account ops@example.com, active)",
        "ok: ssh_keys: all 1 found (homelab-admin)",
        "ok: dns.zone: example.com exists",
        "ok: dns.records: no A/AAAA/CAA/CNAME records yet at blog, headscale, photos "
        "(4 records in the zone)",
        "ok: region: fra1 (Frankfurt 1) is available",
        "ok: size: s-1vcpu-1gb is offered in fra1",
        "ok: block storage: fra1 offers volumes",
        "ok: volume: the name homelab-edge-state is free in fra1",
    ]


def test_records_are_read_200_per_page(fake: FakeDigitalOcean) -> None:
    _checks(fake)
    assert fake.paths("/v2/domains/example.com/records") == [
        "/v2/domains/example.com/records?page=1&per_page=200"
    ]


# ---------------------------------------------------------------------------
# The token
# ---------------------------------------------------------------------------


def test_rejected_token_is_named_and_stops_the_checks(fake: FakeDigitalOcean) -> None:
    checks = run_preflight(config_with(), _api(fake, token="dop_v1_revoked"))
    assert _problems(checks) == [
        "problem: token: DIGITALOCEAN_TOKEN was rejected (401 Unauthorized): it is wrong, "
        "expired or revoked; create a token at https://cloud.digitalocean.com/account/api/tokens"
        " and export it again",
        "problem: preflight: stopped: the remaining checks need the API",
    ]
    assert fake.requests == ["/v2/account"]  # a 401 is never retried


def test_locked_account_is_a_problem(fake: FakeDigitalOcean) -> None:
    fake.state.account |= {"status": "locked", "status_message": "unpaid invoice"}
    (token, *_) = _checks(fake)
    assert token.line() == (
        "problem: token: the token works but account ops@example.com is locked (unpaid invoice); "
        "DigitalOcean refuses new resources until that is resolved"
    )


# ---------------------------------------------------------------------------
# Rate limits: bounded retries, then a clear line
# ---------------------------------------------------------------------------


def test_rate_limit_is_retried_a_bounded_number_of_times(fake: FakeDigitalOcean) -> None:
    fake.state.rate_limited = -1  # every request
    checks = _checks(fake)
    assert _problems(checks) == [
        "problem: token: rate limited by the DigitalOcean API (429 Too Many Requests) after 2 "
        "retries; wait a minute and run preflight again",
        "problem: preflight: stopped: the remaining checks need the API",
    ]
    assert fake.requests == ["/v2/account"] * 3  # the first try and two retries


def test_rate_limit_that_clears_is_invisible(fake: FakeDigitalOcean) -> None:
    fake.state.rate_limited = 2
    checks = _checks(fake)
    assert _problems(checks) == []
    assert fake.requests[:3] == ["/v2/account"] * 3


def test_long_retry_after_is_capped(fake: FakeDigitalOcean) -> None:
    fake.state.rate_limited = -1
    fake.state.retry_after = "60"
    started = time.monotonic()
    run_preflight(config_with(), _api(fake, max_wait=0.2))
    elapsed = time.monotonic() - started
    assert 0.4 <= elapsed < 5  # two waits of 0.2 s, not two minutes


# ---------------------------------------------------------------------------
# SSH keys
# ---------------------------------------------------------------------------


def test_ssh_key_by_fingerprint_is_found(fake: FakeDigitalOcean) -> None:
    checks = _checks(fake, config_with(ssh_keys=[FINGERPRINT]))
    assert [c.line() for c in checks if c.subject == "ssh_keys"] == [
        f"ok: ssh_keys: all 1 found ({FINGERPRINT})"
    ]


def test_missing_ssh_keys_are_each_named(fake: FakeDigitalOcean) -> None:
    other = "aa:bb:cc:dd:ee:ff:00:11:22:33:44:55:66:77:88:99"
    checks = _checks(fake, config_with(ssh_keys=["Homelab-Admin", other]))
    assert _problems(checks) == [
        f"problem: ssh_keys: no key with fingerprint {other} in this account; add the public key "
        "under Settings > Security, or correct the fingerprint",
        "problem: ssh_keys: no key named 'Homelab-Admin' in this account (names are "
        "case-sensitive); add it under Settings > Security, or use its fingerprint",
    ]


def test_two_keys_with_the_wanted_name_are_ambiguous(fake: FakeDigitalOcean) -> None:
    fake.state.ssh_keys.append(ssh_key(512190, "homelab-admin", "11:" * 15 + "11"))
    assert _problems(_checks(fake)) == [
        "problem: ssh_keys: 2 keys are named 'homelab-admin'; the stack looks keys up by name "
        "and needs exactly one: rename the others or use the fingerprint"
    ]


def test_ssh_keys_are_read_across_pages(fake: FakeDigitalOcean) -> None:
    fake.state.ssh_keys[:0] = [
        ssh_key(i, f"laptop-{i}", f"{i:02x}:" * 15 + "00") for i in range(250)
    ]
    assert _problems(_checks(fake)) == []
    assert len(fake.paths("/v2/account/keys")) == 2


# ---------------------------------------------------------------------------
# The DNS zone and what is already in it
# ---------------------------------------------------------------------------


def test_missing_zone_is_a_problem_and_skips_the_record_check(fake: FakeDigitalOcean) -> None:
    fake.state.domains.clear()
    checks = _checks(fake)
    assert _problems(checks) == [
        "problem: dns.zone: example.com is not a DNS zone in this account; add it under "
        "Networking > Domains (and delegate it to ns1-3.digitalocean.com), or set "
        "dns.create_zone = true"
    ]
    assert fake.paths("/v2/domains/example.com/records") == []


def test_zone_to_create_must_not_exist_yet(fake: FakeDigitalOcean) -> None:
    assert _problems(_checks(fake, config_with(dns={"create_zone": True}))) == [
        "problem: dns.zone: example.com already exists in this account but dns.create_zone is "
        "true; set dns.create_zone = false to use it (creating it again fails)"
    ]


def test_zone_to_create_that_does_not_exist_is_fine(fake: FakeDigitalOcean) -> None:
    fake.state.domains.clear()
    checks = _checks(fake, config_with(dns={"create_zone": True}))
    assert _problems(checks) == []
    assert "ok: dns.zone: example.com does not exist yet; the stack creates it" in [
        c.line() for c in checks
    ]


def test_records_where_the_stack_writes_are_clashes(fake: FakeDigitalOcean) -> None:
    fake.state.domains["example.com"] += [
        record(10, "A", "blog", "198.51.100.4"),
        record(11, "CNAME", "photos", "photos.example.net."),
        record(12, "AAAA", "headscale", "2001:db8::4"),
        record(13, "CAA", "blog", "comodoca.com"),
        # Not in the way: other types at our names, our types at other names.
        record(14, "TXT", "blog", "v=spf1 -all"),
        record(15, "MX", "@", "mail.example.com."),
        record(16, "A", "www", "198.51.100.5"),
    ]
    assert _problems(_checks(fake)) == [
        "problem: dns.records: blog.example.com already has a A record ('198.51.100.4', id 10); "
        "a second A record would send some visitors elsewhere: delete it before the first apply",
        "problem: dns.records: blog.example.com already has a CAA record ('comodoca.com', id 13); "
        "it would widen or contradict the Let's Encrypt-only CAA record: delete it before the "
        "first apply",
        "problem: dns.records: headscale.example.com already has a AAAA record ('2001:db8::4', "
        "id 12); IPv6 visitors would go to that address instead of the edge: delete it before "
        "the first apply",
        "problem: dns.records: photos.example.com already has a CNAME record "
        "('photos.example.net.', id 11); a CNAME cannot share its name with the stack's "
        "records: delete it before the first apply",
    ]


def test_clash_on_the_last_page_of_a_large_zone_is_found(fake: FakeDigitalOcean) -> None:
    filler = [record(100 + i, "TXT", f"host-{i}", "x") for i in range(445)]
    fake.state.domains["example.com"] += [*filler, record(999, "A", "headscale", "192.0.2.9")]
    problems = _problems(_checks(fake))
    assert len(problems) == 1
    assert problems[0].startswith("problem: dns.records: headscale.example.com already has a A")
    assert fake.paths("/v2/domains/example.com/records") == [
        f"/v2/domains/example.com/records?page={page}&per_page=200" for page in (1, 2, 3)
    ]


def test_apex_site_is_matched_as_at(fake: FakeDigitalOcean) -> None:
    fake.state.domains["example.com"].append(record(20, "A", "@", "192.0.2.1"))
    config = config_with(sites=[{"domain": "example.com", "upstream": "homelab", "port": 80}])
    assert [p.split(";")[0] for p in _problems(_checks(fake, config))] == [
        "problem: dns.records: example.com already has a A record ('192.0.2.1', id 20)"
    ]


def test_token_without_dns_scope_fails_that_check_only(fake: FakeDigitalOcean) -> None:
    fake.state.forbidden = ("/v2/domains",)
    checks = _checks(fake)
    assert _problems(checks) == [
        "problem: dns.zone: the token may not read domain example.com (403 Forbidden); give it "
        "read access to that resource at https://cloud.digitalocean.com/account/api/tokens"
    ]
    assert [c.subject for c in checks][-1] == "volume"  # the other checks still ran


# ---------------------------------------------------------------------------
# Region, size, block storage, volume name
# ---------------------------------------------------------------------------


def test_size_not_offered_in_the_region_is_a_problem(fake: FakeDigitalOcean) -> None:
    assert _problems(_checks(fake, config_with(size="g-2vcpu-8gb"))) == [
        "problem: size: g-2vcpu-8gb is not offered in fra1; sizes there include "
        + ", ".join(sorted(FRA1_SIZES))
    ]


def test_region_without_block_storage_is_a_problem(fake: FakeDigitalOcean) -> None:
    fake.state.regions = [region("fra1", "Frankfurt 1", sizes=FRA1_SIZES, storage=False)]
    assert _problems(_checks(fake)) == [
        "problem: block storage: fra1 offers no block storage, which holds the edge's state; "
        "pick a region whose features include storage"
    ]


def test_region_missing_from_the_account_lists_the_available_ones(
    fake: FakeDigitalOcean,
) -> None:
    fake.state.regions = [r for r in fake.state.regions if r["slug"] != "fra1"]
    assert _problems(_checks(fake)) == [
        "problem: region: fra1 is not a region of this account; available: ams3, nyc3"
    ]


def test_existing_volume_with_the_stack_name_is_a_problem(fake: FakeDigitalOcean) -> None:
    fake.state.volumes.append(
        {
            "id": "506f78a4-e098-11e5-ad9f-000f53306ae1",
            "name": "homelab-edge-state",
            "region": {"slug": "fra1", "name": "Frankfurt 1"},
            "size_gigabytes": 5,
            "droplet_ids": [],
        }
    )
    assert _problems(_checks(fake)) == [
        "problem: volume: a volume named homelab-edge-state already exists in fra1 (id "
        "506f78a4-e098-11e5-ad9f-000f53306ae1); if it holds this edge's state, import it "
        "(terraform import digitalocean_volume.state 506f78a4-e098-11e5-ad9f-000f53306ae1), "
        "otherwise rename the stack"
    ]
    assert fake.paths("/v2/volumes") == [
        "/v2/volumes?name=homelab-edge-state&page=1&per_page=200&region=fra1"
    ]


def test_unreachable_api_is_reported_not_raised() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    api = DigitalOceanApi(TOKEN, ApiSettings(endpoint=f"https://127.0.0.1:{port}", **FAST))
    checks = run_preflight(config_with(), api)
    assert (
        checks[0]
        .line()
        .startswith(
            f"problem: token: cannot reach the DigitalOcean API at https://127.0.0.1:{port} ("
        )
    )
    assert checks[-1].subject == "preflight"
