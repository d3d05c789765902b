"""The homelab's app, run in the home box: `python3 app.py PORT=NAME ...`. Standard library only.

GET /          a small page naming the app, the port, and who asked (Caddy's
               tailnet address) and for whom (X-Forwarded-For)
GET /big?bytes=N   N bytes (default 5 MB), for throughput
GET /status/N  the small page with status N (a known load's 404s)
GET /slow?ms=N the small page after N milliseconds (a known load's slow requests)
GET /ws        a websocket that echoes every text frame as "echo: <text>"
GET /whoami    JSON: the app, the peer, and every header it received

Every request it gets is one JSON line on stdout (the box's "app" log): what
reached the homelab, which the policy scenario reads to show what did not.
"""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import BinaryIO
from urllib.parse import parse_qs, urlsplit

WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
BIG = 5_000_000
CHUNK = b"x" * 65536
_LOG = threading.Lock()


def read_exact(stream: BinaryIO, size: int) -> bytes:
    data = stream.read(size)
    if len(data) < size:
        raise EOFError
    return data


def read_frame(stream: BinaryIO) -> tuple[int, bytes]:
    first, second = read_exact(stream, 2)
    length = second & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", read_exact(stream, 2))
    elif length == 127:
        (length,) = struct.unpack("!Q", read_exact(stream, 8))
    mask = read_exact(stream, 4) if second & 0x80 else b"\0\0\0\0"
    payload = read_exact(stream, length)
    return first & 0x0F, bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def frame(opcode: int, payload: bytes) -> bytes:
    size = len(payload)
    if size < 126:
        return bytes([0x80 | opcode, size]) + payload
    return bytes([0x80 | opcode, 126]) + struct.pack("!H", size) + payload


class App(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    name = "app"
    port = 0

    def log_message(self, *_args: object) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        # Headers and body are separate writes: without this, Nagle holds the
        # body until the proxy's delayed ACK (40 ms) on every small page.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def received(self) -> dict[str, object]:
        return {
            "app": self.name,
            "peer": self.client_address[0],
            "path": self.path,
            "headers": {key.lower(): value for key, value in self.headers.items()},
        }

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        with _LOG:
            sys.stdout.write(json.dumps(self.received()) + "\n")
            sys.stdout.flush()
        if url.path == "/ws" and self.headers.get("Upgrade", "").lower() == "websocket":
            self.websocket()
        elif url.path == "/whoami":
            self.reply(json.dumps(self.received()).encode(), "application/json")
        elif url.path == "/big":
            size = int(parse_qs(url.query).get("bytes", [str(BIG)])[0])
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(size))
            self.end_headers()
            while size > 0:
                self.wfile.write(CHUNK[:size])
                size -= len(CHUNK)
        else:
            status = 200
            if url.path.startswith("/status/") and url.path[8:].isdigit():
                status = int(url.path[8:])
            elif url.path == "/slow":
                time.sleep(int(parse_qs(url.query).get("ms", ["500"])[0]) / 1000)
            body = (
                f"{self.name} app on homelab port {self.port}; peer {self.client_address[0]}; "
                f"host {self.headers.get('Host')}; "
                f"x-forwarded-for {self.headers.get('X-Forwarded-For')}\n"
            ).encode()
            self.reply(body, "text/plain", status)

    def reply(self, body: bytes, kind: str, status: int = 200) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def websocket(self) -> None:
        key = self.headers["Sec-WebSocket-Key"]
        accept = base64.b64encode(hashlib.sha1((key + WEBSOCKET_GUID).encode()).digest())
        self.send_response(101, "Switching Protocols")
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept.decode())
        self.end_headers()
        self.wfile.flush()
        try:
            while True:
                opcode, payload = read_frame(self.rfile)
                if opcode == 8:
                    self.wfile.write(frame(8, payload[:2]))
                    break
                if opcode in (1, 2):
                    self.wfile.write(frame(1, b"echo: " + payload))
                    self.wfile.flush()
        except (EOFError, ConnectionError):
            pass
        self.close_connection = True


def main(specs: list[str]) -> None:
    for spec in specs:
        port, _, name = spec.partition("=")
        handler = type(f"App{port}", (App,), {"name": name or "app", "port": int(port)})
        server = ThreadingHTTPServer(("0.0.0.0", int(port)), handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        print(f"{name} listening on 0.0.0.0:{port}", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main(sys.argv[1:])
