"""The mirror's web server, run inside the mirror box: python server.py CONFIG.json (stdlib only).

One HTTPS listener on 443 answers for every host name, each with its own
certificate chosen by SNI (an unknown name gets an `unrecognized_name` alert,
as a virtual host that is not there); port 80 answers only the hosts served
over plain HTTP. A request is answered from <site>/<Host>/<path>: GET and
HEAD, 404 for anything absent, and a 302 for hosts that redirect (github.com
to its assets host). Every request is one JSON line in the request log, so
tests can see what was fetched. HTTP/1.1 with keep-alive, as apt pipelines.
"""

from __future__ import annotations

import json
import posixpath
import ssl
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

CHUNK = 1 << 16
TIMEOUT = 60


class Mirror:
    def __init__(self, config: dict[str, Any]) -> None:
        self.site = Path(config["site"])
        self.plain_hosts = set(config["plain_hosts"])
        self.redirects: dict[str, str] = config["redirects"]
        self.log = Path(config["log"]).open("a", buffering=1)  # noqa: SIM115 (open while serving)
        self.lock = threading.Lock()
        self.contexts: dict[str, ssl.SSLContext] = {}
        for host, (cert, key) in config["certificates"].items():
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(cert, key)
            self.contexts[host] = context
        self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.tls.sni_callback = self._sni
        first = next(iter(config["certificates"].values()))
        self.tls.load_cert_chain(*first)

    def _sni(self, connection: ssl.SSLSocket, name: str | None, _: ssl.SSLContext) -> int | None:
        if name not in self.contexts:
            return ssl.ALERTDESCRIPTION_UNRECOGNIZED_NAME  # type: ignore[attr-defined, no-any-return]
        connection.context = self.contexts[name]
        return None

    def record(self, entry: dict[str, Any]) -> None:
        with self.lock:
            self.log.write(json.dumps(entry) + "\n")


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], mirror: Mirror, *, tls: bool) -> None:
        self.mirror = mirror
        self.tls = tls
        super().__init__(address, Handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        """The TLS handshake here, in the request's thread, so a slow client blocks no other."""
        request.settimeout(TIMEOUT)
        if self.tls:
            try:
                request = self.mirror.tls.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError) as exc:
                self.mirror.record({"client": client_address[0], "tls_error": str(exc)})
                return
        super().finish_request(request, client_address)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = TIMEOUT  # a client that stalls mid-request frees its thread
    server: Server

    def do_GET(self) -> None:
        self._answer(body=True)

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def _answer(self, *, body: bool) -> None:
        mirror = self.server.mirror
        host = (self.headers.get("Host") or "").split(":")[0].lower()
        path = urllib.parse.unquote(self.path.split("?", 1)[0])
        status, sent = 404, 0
        normal = posixpath.normpath(path)
        served = self.server.tls or host in mirror.plain_hosts
        if served and host in mirror.redirects:
            status = 302
            self._head(status, 0, location=f"https://{mirror.redirects[host]}{normal}")
        else:
            target = mirror.site / host / normal.lstrip("/")
            if served and host and ".." not in normal.split("/") and target.is_file():
                status = 200
                sent = self._file(target, body)
            else:
                self._head(404, 0)
        scheme = "https" if self.server.tls else "http"
        mirror.record({"time": time.time(), "client": self.client_address[0], "scheme": scheme,
                       "host": host, "method": self.command, "path": path, "status": status,
                       "bytes": sent})  # fmt: skip

    def _head(self, status: int, length: int, location: str = "") -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(length))
        if location:
            self.send_header("Location", location)
        self.end_headers()

    def _file(self, target: Path, body: bool) -> int:
        size = target.stat().st_size
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(size))
        self.send_header("Last-Modified", self.date_time_string(int(target.stat().st_mtime)))
        self.end_headers()
        if not body:
            return 0
        sent = 0
        with target.open("rb") as handle:
            while chunk := handle.read(CHUNK):
                self.wfile.write(chunk)
                sent += len(chunk)
        return sent

    def log_message(self, format: str, *args: Any) -> None:  # the JSON log says it all
        pass


def main(config_path: str) -> None:
    config = json.loads(Path(config_path).read_text())
    mirror = Mirror(config)
    servers = [Server((config["address"], 443), mirror, tls=True)]
    servers.append(Server((config["address"], 80), mirror, tls=False))
    for server in servers[1:]:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"serving {', '.join(sorted(mirror.contexts))} on {config['address']}", flush=True)
    servers[0].serve_forever()


if __name__ == "__main__":
    main(sys.argv[1])
