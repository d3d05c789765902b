"""A DigitalOcean API v2 stand-in on 127.0.0.1, over TLS, for preflight tests.

Answers the few GET endpoints preflight reads with response bodies shaped like
the real API's (envelope keys, `links.pages.next`, `meta.total`, error ids),
paginates with `page`/`per_page`, checks the bearer token, and can answer 429
for a number of requests. Every request is logged so tests can count retries
and pages. TLS because azure-core (under pydo) refuses to send a bearer token
over plain HTTP.
"""

from __future__ import annotations

import copy
import json
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

TOKEN = "dop_v1_" + "0" * 64
# Client settings that never wait: retries are counted, not slept through.
FAST = {"retries": 2, "backoff": 0.0, "max_wait": 0.0, "timeout": 5.0}

NOT_FOUND = {
    "id": "not_found",
    "message": "The resource you were accessing could not be found.",
}
UNAUTHORIZED = {"id": "Unauthorized", "message": "Unable to authenticate you"}
RATE_LIMITED = {"id": "too_many_requests", "message": "API Rate limit exceeded."}
FORBIDDEN = {"id": "Forbidden", "message": "You are not authorized to perform this operation"}

FRA1_SIZES = [
    "s-1vcpu-512mb-10gb",
    "s-1vcpu-1gb",
    "s-1vcpu-2gb",
    "s-2vcpu-2gb",
    "s-2vcpu-4gb",
    "s-4vcpu-8gb",
]


def region(slug: str, name: str, *, sizes: list[str], storage: bool = True) -> dict[str, Any]:
    features = ["backups", "ipv6", "metadata", "install_agent", "image_transfer"]
    if storage:
        features.append("storage")
    return {"name": name, "slug": slug, "features": features, "available": True, "sizes": sizes}


def ssh_key(key_id: int, name: str, fingerprint: str) -> dict[str, Any]:
    return {
        "id": key_id,
        "fingerprint": fingerprint,
        "public_key": f"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI{key_id:040d} {name}",
        "name": name,
    }


def record(record_id: int, record_type: str, name: str, data: str) -> dict[str, Any]:
    return {
        "id": record_id,
        "type": record_type,
        "name": name,
        "data": data,
        "priority": None,
        "port": None,
        "ttl": 1800,
        "weight": None,
        "flags": None,
        "tag": None,
    }


def zone_defaults() -> list[dict[str, Any]]:
    """What DigitalOcean puts in a new zone: three NS records and the SOA."""
    return [
        record(1, "NS", "@", "ns1.digitalocean.com"),
        record(2, "NS", "@", "ns2.digitalocean.com"),
        record(3, "NS", "@", "ns3.digitalocean.com"),
        record(4, "SOA", "@", "1800"),
    ]


@dataclass
class FakeAccount:
    """Everything the fake API knows; tests change it before calling."""

    account: dict[str, Any] = field(
        default_factory=lambda: {
            "droplet_limit": 25,
            "floating_ip_limit": 3,
            "volume_limit": 100,
            "email": "ops@example.com",
            "uuid": "b6fr89dbf6d9156cace5f3c78dc9851d957381ef",
            "email_verified": True,
            "status": "active",
            "status_message": "",
            "team": {"uuid": "5df3e3004a17e242b7c20ca6c9fc25b701a47ece", "name": "Homelab"},
        }
    )
    ssh_keys: list[dict[str, Any]] = field(
        default_factory=lambda: [
            ssh_key(512189, "homelab-admin", "3b:16:bf:e4:8b:00:8b:b8:59:8c:a9:d3:f0:19:45:fa"),
        ]
    )
    domains: dict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: {"example.com": zone_defaults()}
    )
    regions: list[dict[str, Any]] = field(
        default_factory=lambda: [
            region("ams3", "Amsterdam 3", sizes=FRA1_SIZES),
            region("fra1", "Frankfurt 1", sizes=FRA1_SIZES),
            region("nyc3", "New York 3", sizes=FRA1_SIZES),
        ]
    )
    volumes: list[dict[str, Any]] = field(default_factory=list)
    # Answer 429 to this many requests before serving normally (-1: always).
    rate_limited: int = 0
    retry_after: str | None = "1"
    # Paths (prefixes) answered with 403, as for a token without that scope.
    forbidden: tuple[str, ...] = ()


class FakeDigitalOcean:
    """The server: start with `with FakeDigitalOcean(cert, key) as api: ...`."""

    def __init__(self, certfile: Path, keyfile: Path) -> None:
        self.state = FakeAccount()
        self.requests: list[str] = []
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

    def paths(self, prefix: str) -> list[str]:
        return [path for path in self.requests if path.startswith(prefix)]

    # -- answering ----------------------------------------------------------

    def answer(self, path: str, query: dict[str, list[str]], auth: str | None) -> _Answer:
        with self._lock:
            self.requests.append(path + ("?" + _query_text(query) if query else ""))
            if self.state.rate_limited:
                self.state.rate_limited -= 1 if self.state.rate_limited > 0 else 0
                return self._rate_limited()
            state = copy.deepcopy(self.state)
        if auth != f"Bearer {TOKEN}":
            return _Answer(401, UNAUTHORIZED)
        if any(path.startswith(prefix) for prefix in state.forbidden):
            return _Answer(403, FORBIDDEN)
        return self._route(state, path, query)

    def _route(self, state: FakeAccount, path: str, query: dict[str, list[str]]) -> _Answer:
        parts = path.strip("/").split("/")
        if parts == ["v2", "account"]:
            return _Answer(200, {"account": state.account})
        if parts == ["v2", "account", "keys"]:
            return self._page(path, query, "ssh_keys", state.ssh_keys)
        if parts == ["v2", "regions"]:
            return self._page(path, query, "regions", state.regions)
        if parts == ["v2", "volumes"]:
            name, where = _first(query, "name"), _first(query, "region")
            matching = [
                volume
                for volume in state.volumes
                if (name is None or volume["name"] == name)
                and (where is None or volume["region"]["slug"] == where)
            ]
            return self._page(path, query, "volumes", matching)
        if len(parts) in (3, 4) and parts[:2] == ["v2", "domains"]:
            records = state.domains.get(parts[2])
            if records is None:
                return _Answer(404, NOT_FOUND)
            if len(parts) == 3:
                return _Answer(200, {"domain": {"name": parts[2], "ttl": 1800, "zone_file": ""}})
            if parts[3] == "records":
                return self._page(path, query, "domain_records", records)
        return _Answer(404, NOT_FOUND)

    def _page(
        self, path: str, query: dict[str, list[str]], key: str, items: list[dict[str, Any]]
    ) -> _Answer:
        per_page = int(_first(query, "per_page") or 20)
        page = int(_first(query, "page") or 1)
        last = max(1, -(-len(items) // per_page))
        body: dict[str, Any] = {
            key: items[(page - 1) * per_page : page * per_page],
            "links": {},
            "meta": {"total": len(items)},
        }
        pages: dict[str, str] = {}
        link = f"https://api.digitalocean.com{path}?page={{}}&per_page={per_page}"
        if page > 1:
            pages |= {"first": link.format(1), "prev": link.format(page - 1)}
        if page < last:
            pages |= {"next": link.format(page + 1), "last": link.format(last)}
        if pages:
            body["links"] = {"pages": pages}
        return _Answer(200, body)

    def _rate_limited(self) -> _Answer:
        headers = {
            "ratelimit-limit": "5000",
            "ratelimit-remaining": "0",
            "ratelimit-reset": str(int(time.time()) + 60),
        }
        if self.state.retry_after is not None:
            headers["Retry-After"] = self.state.retry_after
        return _Answer(429, RATE_LIMITED, headers)


@dataclass
class _Answer:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


def _first(query: dict[str, list[str]], key: str) -> str | None:
    values = query.get(key)
    return values[0] if values else None


def _query_text(query: dict[str, list[str]]) -> str:
    return "&".join(f"{key}={value}" for key in sorted(query) for value in query[key])


def _handler(api: FakeDigitalOcean) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        timeout = 10  # a stuck client cannot hold a thread for long

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            answer = api.answer(url.path, parse_qs(url.query), self.headers.get("Authorization"))
            payload = json.dumps(answer.body).encode()
            self.send_response(answer.status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

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
