"""The fake's HTTPS server: TLS on 127.0.0.1, the bearer token, rate limits, the request log.

TLS because azure-core (under pydo) refuses to send a bearer token over
plain HTTP, and the provider needs an https endpoint it can trust through
SSL_CERT_FILE. Every request is logged, with its JSON body, before anything
else happens, so tests can count retries and assert the calls a client made.
"""

from __future__ import annotations

import json
import ssl
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from support.fake_digitalocean import (
    account,
    addresses,
    domains,
    droplets,
    firewalls,
    monitoring,
    projects,
    snapshots,
    spaces_keys,
    volumes,
)
from support.fake_digitalocean.account import TOKEN, FakeAccount
from support.fake_digitalocean.core import (
    FORBIDDEN,
    RATE_LIMITED,
    UNAUTHORIZED,
    Answer,
    ApiError,
    Request,
    not_found,
)

# Client settings that never wait: retries are counted, not slept through.
FAST = {"retries": 2, "backoff": 0.0, "max_wait": 0.0, "timeout": 5.0}

# The first path segment after /v2 picks the part of the fake that answers.
ROUTES: dict[str, Callable[[FakeAccount, Request], Answer]] = {
    "account": account.handle,
    "regions": account.handle,
    "actions": account.handle,
    "droplets": droplets.handle,
    "volumes": volumes.handle,
    "snapshots": snapshots.handle,
    "reserved_ips": addresses.handle_ipv4,
    "reserved_ipv6": addresses.handle_ipv6,
    "firewalls": firewalls.handle,
    "domains": domains.handle,
    "projects": projects.handle,
    "monitoring": monitoring.handle,
    "spaces": spaces_keys.handle,
}


@dataclass(frozen=True)
class Call:
    """One request as the fake received it."""

    method: str
    path: str
    query: dict[str, list[str]]
    body: Any

    @property
    def target(self) -> str:
        """The path with its query, parameters sorted: what `requests` lists."""
        return self.path + ("?" + _query_text(self.query) if self.query else "")


class FakeDigitalOcean:
    """The server: start with `with FakeDigitalOcean(cert, key) as api: ...`."""

    def __init__(self, certfile: Path, keyfile: Path) -> None:
        self.state = FakeAccount()
        self.calls: list[Call] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(certfile, keyfile)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FakeDigitalOcean:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    @property
    def requests(self) -> list[str]:
        """Every request's path and query, in order (any method)."""
        with self._lock:
            return [call.target for call in self.calls]

    def paths(self, prefix: str) -> list[str]:
        return [path for path in self.requests if path.startswith(prefix)]

    # -- answering ----------------------------------------------------------

    def answer(
        self, method: str, path: str, query: dict[str, list[str]], auth: str | None, body: Any
    ) -> Answer:
        with self._lock:
            self.calls.append(Call(method, path, query, body))
            if self.state.rate_limited:
                self.state.rate_limited -= 1 if self.state.rate_limited > 0 else 0
                return self._rate_limited()
            if auth != f"Bearer {TOKEN}":
                return Answer(401, UNAUTHORIZED)
            if any(path.startswith(prefix) for prefix in self.state.forbidden):
                return Answer(403, FORBIDDEN)
            try:
                return self._route(method, path, query, body)
            except ApiError as error:
                return error.answer()

    def _route(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> Answer:
        parts = tuple(path.strip("/").split("/"))
        if parts[0] != "v2" or len(parts) < 2 or parts[1] not in ROUTES:
            raise not_found()
        if body is not None and not isinstance(body, dict):
            raise ApiError(400, "bad_request", "the request body must be a JSON object")
        request = Request(method, parts[1:], query, body or {})
        return ROUTES[parts[1]](self.state, request)

    def _rate_limited(self) -> Answer:
        headers = {
            "ratelimit-limit": "5000",
            "ratelimit-remaining": "0",
            "ratelimit-reset": str(int(time.time()) + 60),
        }
        if self.state.retry_after is not None:
            headers["Retry-After"] = self.state.retry_after
        return Answer(429, RATE_LIMITED, headers)


def _query_text(query: dict[str, list[str]]) -> str:
    return "&".join(f"{key}={value}" for key in sorted(query) for value in query[key])


def _handler(api: FakeDigitalOcean) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        timeout = 10  # a stuck client cannot hold a thread for long

        def _any(self) -> None:
            url = urlsplit(self.path)
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                body = json.loads(raw) if raw.strip() else None
            except json.JSONDecodeError:
                answer = Answer(400, {"id": "bad_request", "message": "invalid JSON"})
            else:
                auth = self.headers.get("Authorization")
                answer = api.answer(self.command, url.path, parse_qs(url.query), auth, body)
            payload = b"" if answer.body is None else json.dumps(answer.body).encode()
            self.send_response(answer.status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _any

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the request log on the server object is enough

    return Handler


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A throwaway self-signed certificate for 127.0.0.1 (openssl CLI)."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return cert, key
