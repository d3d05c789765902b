"""Small services the lab runs inside boxes: `python3 box_services.py <service> ARGS`. Stdlib only.

What the scenarios put beside the edge: a webhook receiver (in the droplet,
where the health agent posts), a page that tells a client its address, and a
UDP socket shaped exactly like WireGuard's to probe reply addresses with.
"""

from __future__ import annotations

import json
import socket
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path


def udp_echo(port: str) -> None:
    """Bound to 0.0.0.0 and answering with sendto, as magicsock and Headscale's STUN do.

    The kernel picks the reply's source address from the routes, which is
    exactly what the reserved-IP question is about.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("0.0.0.0", int(port)))
    while True:
        data, source = sock.recvfrom(2048)
        sock.sendto(b"echo " + data, source)


def webhook(port: str, record: str) -> None:
    """Accept POSTs; append each JSON body as one line to `record`."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_args: object) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with Path(record).open("a") as handle:
                handle.write(json.dumps(json.loads(body)) + "\n")
            self.send_response(204)
            self.end_headers()

    HTTPServer(("127.0.0.1", int(port)), Handler).serve_forever()


def whoami(port: str) -> None:
    """HTTP on `port` answering every request with the address it came from."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_args: object) -> None:
            pass

        def do_GET(self) -> None:
            body = self.client_address[0].encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    HTTPServer(("0.0.0.0", int(port)), Handler).serve_forever()


SERVICES = {
    "udp-echo": udp_echo,
    "webhook": webhook,
    "whoami": whoami,
}

if __name__ == "__main__":
    SERVICES[sys.argv[1]](*sys.argv[2:])  # type: ignore[operator]
