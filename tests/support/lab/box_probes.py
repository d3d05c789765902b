"""Client-side probes run inside a box: `python3 box_probes.py <probe> ARGS`. Stdlib only.

Each prints one JSON document (the websocket session: one per step) for the
harness to read; none of them decides anything.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import socket
import ssl
import struct
import sys
import threading
import time
import zlib
from urllib.parse import urlsplit

STUN_MAGIC = 0x2112A442


def stun_request(txid: bytes) -> bytes:
    """A binding request as Tailscale sends it: Headscale's STUN answers no other dialect.

    SOFTWARE "tailnode" and a FINGERPRINT (tailscale net/stun, ParseBindingRequest).
    """
    body = struct.pack("!HH", 0x8022, 8) + b"tailnode"
    message = struct.pack("!HHI", 0x0001, len(body) + 8, STUN_MAGIC) + txid + body
    crc = (zlib.crc32(message) ^ 0x5354554E) & 0xFFFFFFFF
    return message + struct.pack("!HHI", 0x8028, 4, crc)


def stun_mapped(reply: bytes, txid: bytes) -> str | None:
    """XOR-MAPPED-ADDRESS of a binding response (an IPv4 may come back v4-mapped)."""
    offset = 20
    while offset + 4 <= len(reply):
        kind, length = struct.unpack("!HH", reply[offset : offset + 4])
        value = reply[offset + 4 : offset + 4 + length]
        if kind == 0x0020 and length >= 8:
            port = struct.unpack("!H", value[2:4])[0] ^ (STUN_MAGIC >> 16)
            key = struct.pack("!I", STUN_MAGIC) + txid
            raw = bytes(b ^ k for b, k in zip(value[4:], key, strict=False))
            address = raw[:4] if value[1] == 1 else raw[12:16]
            return f"{socket.inet_ntoa(address)}:{port}"
        offset += 4 + length + (-length % 4)
    return None


def udp(*targets: str) -> None:
    """`stun:IP:PORT` or `echo:IP:PORT`, all at once from unconnected sockets.

    Unconnected, so a reply from any source address is seen: the point is which
    address answers.
    """
    sockets = []
    for target in targets:
        kind, address, port = target.split(":")
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("0.0.0.0", 0))
        txid = os.urandom(12)
        sock.sendto(stun_request(txid) if kind == "stun" else b"ping " + txid, (address, int(port)))
        sockets.append((target, kind, sock, txid))
    results = {}
    deadline = time.monotonic() + 1.0
    for target, kind, sock, txid in sockets:
        sock.settimeout(max(deadline - time.monotonic(), 0.01))
        try:
            reply, source = sock.recvfrom(2048)
        except TimeoutError:
            results[target] = {"reply_from": None, "mapped": None}
            continue
        mapped = stun_mapped(reply, txid) if kind == "stun" else None
        results[target] = {"reply_from": f"{source[0]}:{source[1]}", "mapped": mapped}
    print(json.dumps(results))


def tcp(address: str, *ports: str) -> None:
    """Per port: "open", "refused" (a RST: nothing listens) or "no answer"."""
    results = {}
    for port in ports:
        try:
            with socket.create_connection((address, int(port)), timeout=2):
                results[port] = "open"
        except ConnectionRefusedError:
            results[port] = "refused"
        except OSError as exc:
            results[port] = f"no answer ({exc})"
    print(json.dumps(results))


def exchange(protocol: str, address: str, port: str, message: str) -> None:
    """One message to a peer echo (box_services.py) and its answer, or why there is none.

    UDP from an unconnected socket, so the answer's source address is seen.
    """
    try:
        if protocol == "udp":
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.settimeout(2)
                sock.sendto(message.encode(), (address, int(port)))
                reply, source = sock.recvfrom(65535)
        else:
            with socket.create_connection((address, int(port)), timeout=2) as sock:
                sock.sendall(message.encode())
                reply, source = sock.recv(65535), sock.getpeername()
    except OSError as exc:
        print(json.dumps({"reply": None, "error": f"{type(exc).__name__}: {exc}"}))
        return
    print(json.dumps({"reply": reply.decode(errors="replace"), "from": f"{source[0]}:{source[1]}"}))


def round_trips(protocol: str, address: str, port: str, count: str) -> None:
    """`count` small messages to a peer echo, one at a time on one socket: each round trip's
    seconds (bench/ports.py's latency)."""
    seconds = []
    if protocol == "udp":
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.connect((address, int(port)))
    else:
        sock = socket.create_connection((address, int(port)), timeout=5)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.settimeout(2)
    for number in range(int(count)):
        start = time.perf_counter()
        sock.send(f"ping {number}".encode())
        while not sock.recv(2048).endswith(f" {number}".encode()):
            pass
        seconds.append(time.perf_counter() - start)
    print(json.dumps({"seconds": seconds}))


def udp_flow(address: str, port: str, interval_ms: str, count: str) -> None:
    """Numbered datagrams, one every `interval_ms`, from one socket (one flow, as a game
    client keeps): `count` of them, or with count 0 until a line arrives on stdin. For each
    answer its number, when it was sent and when it came back.

    Prints `{"started": ...}` at once, then the whole record when done.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("0.0.0.0", 0))
    sock.settimeout(0.2)
    sent: dict[int, float] = {}
    answers: list[tuple[int, float, float]] = []
    done, stop = threading.Event(), threading.Event()

    def receive() -> None:
        while not done.is_set():
            try:
                data = sock.recv(2048)
            except TimeoutError:
                continue
            number = int(data.split()[-1])
            answers.append((number, sent.get(number, 0.0), time.time()))

    threading.Thread(target=receive, daemon=True).start()
    if int(count) == 0:
        threading.Thread(target=lambda: (sys.stdin.readline(), stop.set()), daemon=True).start()
    print(json.dumps({"started": time.time()}), flush=True)
    step = int(interval_ms) / 1000
    start = time.monotonic()
    number = 0
    while not stop.is_set() and (int(count) == 0 or number < int(count)):
        time.sleep(max(start + number * step - time.monotonic(), 0))
        sent[number] = time.time()
        sock.sendto(f"seq {number}".encode(), (address, int(port)))
        number += 1
    time.sleep(2)
    done.set()
    print(json.dumps({"sent": sent, "answers": answers}), flush=True)


def tls(address: str, name: str, cafile: str) -> None:
    """The certificate `address`:443 presents for SNI `name`, verified against `cafile`."""
    context = ssl.create_default_context(cafile=cafile)
    try:
        with (
            socket.create_connection((address, 443), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname=name) as sock,
        ):
            cert = sock.getpeercert() or {}
    except (ssl.SSLError, OSError) as exc:
        print(json.dumps({"verified": False, "error": str(exc)}))
        return
    issuer = dict(item[0] for item in cert.get("issuer", ()))
    names = [value for kind, value in cert.get("subjectAltName", ()) if kind == "DNS"]
    print(json.dumps({"verified": True, "names": names, "issuer": issuer.get("commonName")}))


def _frame(payload: bytes) -> bytes:
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x81, 0x80 | len(payload)]) + mask + masked


def _read_exact(sock: ssl.SSLSocket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise EOFError("connection closed")
        data += chunk
    return data


def websocket(host: str, cafile: str, messages: str) -> None:
    """Open wss://host/ws; send each message once a line arrives on stdin, print each echo."""
    context = ssl.create_default_context(cafile=cafile)
    raw = socket.create_connection((host, 443), timeout=10)
    sock = context.wrap_socket(raw, server_hostname=host)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET /ws HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += _read_exact(sock, 1)
    print(json.dumps({"handshake": head.split(b"\r\n")[0].decode()}), flush=True)
    for message in messages.split(","):
        if not sys.stdin.readline():
            break
        try:
            sock.sendall(_frame(message.encode()))
            _first, second = _read_exact(sock, 2)
            echo = _read_exact(sock, second & 0x7F).decode()
        except (OSError, EOFError) as exc:
            print(json.dumps({"sent": message, "error": str(exc)}), flush=True)
            return
        print(json.dumps({"sent": message, "echo": echo}), flush=True)
    sock.close()


def fetch(url: str, cafile: str, count: str = "1") -> None:
    """GET `url` `count` times on one kept-alive connection: status, bytes, seconds each."""
    parts = urlsplit(url)
    connection: http.client.HTTPConnection
    if parts.scheme == "https":
        context = ssl.create_default_context(cafile=cafile)
        connection = http.client.HTTPSConnection(parts.netloc, timeout=60, context=context)
    else:
        connection = http.client.HTTPConnection(parts.netloc, timeout=60)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    seconds, size, status = [], 0, 0
    for _ in range(int(count)):
        start = time.perf_counter()
        connection.request("GET", path or "/")
        response = connection.getresponse()
        size = len(response.read())
        seconds.append(time.perf_counter() - start)
        status = response.status
    print(json.dumps({"status": status, "bytes": size, "seconds": seconds}))


class _Counts:
    """What the load's clients saw, shared between their threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests = self.failed = self.retried = 0
        self.errors: list[str] = []
        self.last_ok = time.monotonic()
        self.longest_gap = 0.0

    def ok(self) -> None:
        with self.lock:
            self.requests += 1
            now = time.monotonic()
            self.longest_gap = max(self.longest_gap, now - self.last_ok)
            self.last_ok = now

    def retry(self) -> None:
        with self.lock:
            self.retried += 1

    def failure(self, error: str) -> None:
        with self.lock:
            self.requests += 1
            self.failed += 1
            if len(self.errors) < 10:
                self.errors.append(error)


def _connection(host: str, context: ssl.SSLContext) -> http.client.HTTPSConnection:
    return http.client.HTTPSConnection(host, timeout=10, context=context)


def _get(connection: http.client.HTTPConnection, path: str, expect: str) -> None:
    connection.request("GET", path)
    response = connection.getresponse()
    body = response.read().decode(errors="replace")
    if response.status != 200 or not body.startswith(expect):
        raise ValueError(f"HTTP {response.status}: {body[:80]!r}")


def _client(
    url: str, context: ssl.SSLContext, expect: str, interval: float, keep: bool,
    counts: _Counts, stop: threading.Event,
) -> None:  # fmt: skip
    """Requests every `interval` s until `stop`: each on a new connection, or (`keep`) on one
    kept alive, sent again once on a new connection when the server had closed the kept one
    before answering (what browsers and curl do for a GET: RFC 9112, section 9.3.1)."""
    parts = urlsplit(url)
    connection: http.client.HTTPSConnection | None = None
    while not stop.wait(interval):
        reused = keep and connection is not None
        try:
            connection = connection if reused and connection else _connection(parts.netloc, context)
            try:
                _get(connection, parts.path or "/", expect)
            except (ConnectionError, ssl.SSLError, http.client.RemoteDisconnected):
                # Closed by the server before any answer (a reload closes idle connections):
                # only a kept connection is sent again, a new one has failed for good.
                if not reused:
                    raise
                counts.retry()
                connection.close()
                connection = _connection(parts.netloc, context)
                _get(connection, parts.path or "/", expect)
            counts.ok()
        except (OSError, http.client.HTTPException, ValueError) as exc:
            counts.failure(f"{time.time():.3f} {'kept' if keep else 'new'}: {exc!r}"[:300])
            if connection is not None:
                connection.close()
            connection = None
        if not keep and connection is not None:
            connection.close()
            connection = None


def load(url: str, cafile: str, expect: str, interval: str = "0.05") -> None:
    """GET `url` from two clients, one opening a new connection per request (a new visitor
    each time), one on a kept-alive connection (a browser), until a line arrives on stdin;
    then print what they saw. A request fails on any error, or any answer but a 200 whose
    body starts with `expect`."""
    context = ssl.create_default_context(cafile=cafile)
    counts, stop = _Counts(), threading.Event()
    clients = [
        threading.Thread(target=_client, args=(url, context, expect, float(interval), keep,
                                               counts, stop))
        for keep in (False, True)
    ]  # fmt: skip
    started = time.monotonic()
    for client in clients:
        client.start()
    print(json.dumps({"started": True}), flush=True)
    sys.stdin.readline()
    stop.set()
    for client in clients:
        client.join(timeout=30)
    counts.longest_gap = max(counts.longest_gap, time.monotonic() - counts.last_ok)
    print(json.dumps({
        "seconds": round(time.monotonic() - started, 3), "requests": counts.requests,
        "failed": counts.failed, "retried": counts.retried, "errors": counts.errors,
        "longest_gap": round(counts.longest_gap, 3),
    }), flush=True)  # fmt: skip


PROBES = {
    "udp": udp,
    "tcp": tcp,
    "exchange": exchange,
    "udp-flow": udp_flow,
    "round-trips": round_trips,
    "tls": tls,
    "websocket": websocket,
    "fetch": fetch,
    "load": load,
}

if __name__ == "__main__":
    PROBES[sys.argv[1]](*sys.argv[2:])  # type: ignore[operator]
