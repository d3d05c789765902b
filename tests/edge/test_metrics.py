"""The metrics endpoint: who may scrape, what the page holds, where it listens after a reload.

Served for real over HTTP on 127.0.0.1 (the lab serves it on the edge's
tailnet address, tests/lab/test_status.py); the tailnet's users come from the
recorded `tailscale status` of tests/data/tailscale, where `homelab` is
100.64.0.2.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from support.config import DATA
from support.scripted_edge import Edge, caddy_page, write_edge_files

from homelab_tunnel.edge.collect import Result
from homelab_tunnel.edge.exposition import parse
from homelab_tunnel.edge.metrics import CONTENT_TYPE, Exporter, Scrapers, Service, handler
from homelab_tunnel.edge.observe import Observer, Settings

STATUS = (DATA / "tailscale" / "status-direct.json").read_text()


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _status_runner(calls: list[str]) -> object:
    def run(commands: Sequence[Sequence[str]], _timeout: float) -> Result:
        calls.append(" ".join(commands[0]))
        return Result(0, STATUS, "")

    return run


def test_a_named_machine_is_allowed_by_its_headscale_user() -> None:
    calls: list[str] = []
    scrapers = Scrapers(["homelab"], _status_runner(calls), Clock())  # type: ignore[arg-type]
    assert scrapers.allowed("100.64.0.2")
    assert scrapers.allowed("fd7a:115c:a1e0::2")
    assert scrapers.allowed("::ffff:100.64.0.2")  # IPv4 through a dual-stack socket
    assert not scrapers.allowed("100.64.0.1")  # the edge itself, user edge


def test_negative_twin_another_machine_is_refused() -> None:
    scrapers = Scrapers(["nas"], _status_runner([]), Clock())  # type: ignore[arg-type]
    assert not scrapers.allowed("100.64.0.2")


def test_a_scraper_given_by_address_needs_no_tailnet_lookup() -> None:
    def broken(commands: Sequence[Sequence[str]], _timeout: float) -> Result:
        return Result(1, "", "failed to connect to tailscaled\n")

    scrapers = Scrapers(["100.64.0.9"], broken, Clock())
    assert scrapers.allowed("100.64.0.9")
    assert not scrapers.allowed("100.64.0.2")


def test_an_unknown_address_asks_the_tailnet_again_only_after_a_pause() -> None:
    calls: list[str] = []
    clock = Clock()
    scrapers = Scrapers(["homelab"], _status_runner(calls), clock)  # type: ignore[arg-type]
    for _ in range(3):
        assert not scrapers.allowed("100.64.0.77")
    assert len(calls) == 1
    clock.now += 6
    scrapers.allowed("100.64.0.77")
    assert len(calls) == 2
    clock.now += 1
    assert scrapers.allowed("100.64.0.2")  # known: no new question
    assert len(calls) == 2


@pytest.fixture
def observer(tmp_path: Path) -> Observer:
    write_edge_files(tmp_path)
    edge = Edge()
    edge.pages["caddy"] = [caddy_page(3, 1, 1)]
    edge.pages["headscale"] = [
        "# TYPE go_goroutines gauge\ngo_goroutines 9\n# TYPE headscale_nodestore_nodes gauge\n"
        "headscale_nodestore_nodes 2\n"
    ]
    return Observer(
        Settings.read(tmp_path), root=tmp_path, run=edge.run, fetch=edge.fetch,
        storage=Path("/var/lib/caddy"),
    )  # fmt: skip


@contextlib.contextmanager
def _serving(observer: Observer, names: list[str]) -> Iterator[str]:
    from http.server import ThreadingHTTPServer

    scrapers = Scrapers(names, _status_runner([]), Clock())  # type: ignore[arg-type]
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler(Exporter(observer), scrapers))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status, answer.headers["Content-Type"], answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


def test_a_scraper_gets_every_source_labelled_and_the_edges_own(observer: Observer) -> None:
    with _serving(observer, ["127.0.0.1"]) as base:
        code, kind, text = _get(f"{base}/metrics")
    assert (code, kind) == (200, CONTENT_TYPE)
    families = parse(text)
    duration = families["caddy_http_request_duration_seconds"]
    assert {s.label("source") for s in duration.samples} == {"caddy"}
    assert families["headscale_nodestore_nodes"].samples[0].label("source") == "headscale"
    path = families["homelab_tunnel_upstream_path"].samples
    assert {s.label("path") for s in path if s.value} == {"direct"}
    assert text.count("# TYPE go_goroutines ") == 1


def test_anyone_else_is_refused_with_403(observer: Observer) -> None:
    with _serving(observer, ["homelab"]) as base:
        code, _, text = _get(f"{base}/metrics")
    assert code == 403
    assert text == "forbidden: not a machine in this edge's metrics.scrapers\n"


def test_other_paths_are_404(observer: Observer) -> None:
    with _serving(observer, ["127.0.0.1"]) as base:
        assert _get(f"{base}/")[0] == 404
        assert _get(f"{base}/metrics/../debug")[0] == 404


def test_two_scrapes_at_once_cost_one_look(observer: Observer) -> None:
    looks = []
    sample = observer.sample

    def counted() -> object:
        looks.append(1)
        return sample()

    observer.sample = counted  # type: ignore[method-assign]
    exporter = Exporter(observer)
    assert exporter.page() == exporter.page()
    assert len(looks) == 1


# ---------------------------------------------------------------------------
# The service: where it listens, and a reload
# ---------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _answers(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
        return True
    return False


def _until(what: str, check: object, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"never: {what}")
        time.sleep(0.05)


def test_the_service_listens_where_the_settings_say_and_follows_a_reload(tmp_path: Path) -> None:
    write_edge_files(tmp_path)
    env = tmp_path / "etc/homelab-tunnel/metrics.env"
    first, second = _free_port(), _free_port()

    def settings(port: int, scrapers: str) -> None:
        text = env.read_text().splitlines()
        kept = [
            line for line in text if not line.startswith(("METRICS_PORT=", "METRICS_SCRAPERS="))
        ]
        env.write_text(
            "\n".join([*kept, f"METRICS_PORT={port}", f"METRICS_SCRAPERS={scrapers}", ""])
        )

    edge = Edge()

    def run(commands: Sequence[Sequence[str]], timeout: float) -> Result:
        if tuple(commands[0]) == ("tailscale", "ip", "-4"):
            return Result(0, "127.0.0.1\n", "")  # the tailnet address, here loopback
        return edge.run(commands, timeout)

    def make_observer() -> Observer:
        return Observer(Settings.read(tmp_path), root=tmp_path, run=run, fetch=edge.fetch)

    settings(first, "127.0.0.1")
    service = Service(run=run, make_observer=make_observer)
    thread = threading.Thread(target=service.serve, daemon=True)
    thread.start()
    try:
        _until("the first port answers", lambda: _answers(first))
        assert _get(f"http://127.0.0.1:{first}/metrics")[0] == 200
        settings(second, "127.0.0.1")
        service.reload.set()
        _until("the second port answers", lambda: _answers(second))
        _until("the first port is closed", lambda: not _answers(first))
        settings(second, "")  # no scrapers: no endpoint at all
        service.reload.set()
        _until("nothing listens", lambda: not _answers(second))
    finally:
        service.stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()
