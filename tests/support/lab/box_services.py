"""Small services the lab runs inside boxes: `python3 box_services.py <service> ARGS`. Stdlib only.

Stand-ins for what a real droplet has around it: DigitalOcean's metadata
service, a webhook receiver, journald (for reading Headscale's log), systemd's
path units and timers (they `systemctl start` their service, see units.py),
a UDP socket shaped exactly like WireGuard's to probe reply addresses with,
and the homelab's raw TCP and UDP services behind forwarded ports.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
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


def metadata(address: str, port: str, document: str) -> None:
    """DigitalOcean's metadata service: GET /metadata/v1/<key> -> the value in the JSON file."""
    values = json.loads(Path(document).read_text())

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_args: object) -> None:
            pass

        def do_GET(self) -> None:
            value = values.get(self.path.removeprefix("/metadata/v1/"))
            if value is None:
                self.send_error(404)
                return
            body = str(value).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    HTTPServer((address, int(port)), Handler).serve_forever()


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


def journalctl(logs: str, *args: str) -> None:
    """`journalctl -u UNIT [--since -Nmin|-Nh] ...` over the lab's daemon log of UNIT.

    Lines carry the daemon's own RFC 3339 time stamp (Headscale's text log
    does); a line without one belongs to the line before it.
    """
    unit = args[args.index("-u") + 1]
    since = args[args.index("--since") + 1] if "--since" in args else None
    cutoff = None
    if since:
        amount = since.lstrip("-")
        number = int(amount.rstrip("minh"))
        unit_of = timedelta(hours=1) if amount.endswith("h") else timedelta(minutes=1)
        cutoff = datetime.now(UTC) - number * unit_of
    path = Path(logs) / f"edge-{unit}.log"
    if not path.exists():
        sys.exit(f"-- No entries for unit {unit} --")
    keep = cutoff is None
    for line in path.read_text(errors="replace").splitlines():
        stamp = line.split(" ", 1)[0]
        try:
            when = datetime.fromisoformat(stamp)
        except ValueError:
            when = None
        if when is not None and cutoff is not None:
            keep = (when if when.tzinfo else when.replace(tzinfo=UTC)) >= cutoff
        if keep:
            print(line)


def _signature(path: str) -> tuple[int, ...] | None:
    try:
        found = Path(path).stat()
    except OSError:
        return None
    return (found.st_ino, found.st_size, found.st_mtime_ns, found.st_ctime_ns)


def path_trigger(unit: str, *paths: str) -> None:
    """A path unit's PathChanged=: start `unit` whenever one of `paths` changes (polled)."""
    seen = {path: _signature(path) for path in paths}
    while True:
        time.sleep(0.1)
        now = {path: _signature(path) for path in paths}
        if now != seen:
            seen = now
            print(f"{datetime.now(UTC).isoformat()} changed: starting {unit}", flush=True)
            subprocess.run(["systemctl", "start", unit], check=False)


def timer_trigger(unit: str, first: str, every: str) -> None:
    """A timer's OnActiveSec= then OnUnitActiveSec=: start `unit` then, and every `every` s."""
    time.sleep(float(first))
    while True:
        print(f"{datetime.now(UTC).isoformat()} elapsed: starting {unit}", flush=True)
        subprocess.run(["systemctl", "start", unit], check=False)
        time.sleep(float(every))


SERVICES = {
    "udp-echo": udp_echo,
    "peer-echo": peer_echo,
    "metadata": metadata,
    "webhook": webhook,
    "whoami": whoami,
    "journalctl": journalctl,
    "path-trigger": path_trigger,
    "timer-trigger": timer_trigger,
}

if __name__ == "__main__":
    SERVICES[sys.argv[1]](*sys.argv[2:])  # type: ignore[operator]
