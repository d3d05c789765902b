"""Small services the lab runs inside boxes: `python3 box_services.py <service> ARGS`. Stdlib only.

What the scenarios put beside the edge: a webhook receiver (in the droplet,
where the health agent posts), a page that tells a client its address, a UDP
socket shaped exactly like WireGuard's to probe reply addresses with, and the
homelab's raw TCP and UDP services behind forwarded ports.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
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


def peer_echo(protocol: str, *ports: str) -> None:
    """A game server's stand-in on each port: every datagram (UDP) or every chunk of a
    connection (TCP) comes back prefixed with the address it came from, so the
    client sees what the homelab sees as its source."""
    for port in ports:
        serve = _udp_peer_echo if protocol == "udp" else _tcp_peer_echo
        threading.Thread(target=serve, args=(int(port),), daemon=True).start()
        print(f"{protocol} peer echo on {port}", flush=True)
    threading.Event().wait()


def _udp_peer_echo(port: int) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("0.0.0.0", port))
    while True:
        data, source = sock.recvfrom(65535)
        sock.sendto(f"{source[0]} ".encode() + data, source)


def _tcp_peer_echo(port: int) -> None:
    server = socket.create_server(("0.0.0.0", port))
    while True:
        connection, source = server.accept()
        threading.Thread(target=_echo_stream, args=(connection, source[0]), daemon=True).start()


def _echo_stream(connection: socket.socket, peer: str) -> None:
    with connection:
        while data := connection.recv(65536):
            connection.sendall(f"{peer} ".encode() + data)


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
    "peer-echo": peer_echo,
    "webhook": webhook,
    "whoami": whoami,
}

if __name__ == "__main__":
    SERVICES[sys.argv[1]](*sys.argv[2:])  # type: ignore[operator]
