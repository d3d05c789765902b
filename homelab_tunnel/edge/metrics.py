"""The edge's Prometheus endpoint, on its tailnet address, for the machines in metrics.scrapers.

    python3 -m homelab_tunnel.edge.metrics      homelab-tunnel-metrics.service

One page: Caddy's, Headscale's and Litestream's own metrics, each series
labelled with its `source`, then the edge's (gauges.py). It listens on the
edge's tailnet IPv4 only, never on a public address, and answers only
machines named in metrics.scrapers: the ACL lets nobody else reach the port,
and the endpoint checks again who is asking (the peer's Headscale user, from
`tailscale status`), so a policy mistake alone does not open it. With no
scrapers there is no endpoint. SIGHUP (the config agent's reload, when the
scrapers or the port change) reads the settings again.
"""

from __future__ import annotations

import ipaddress
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType

from homelab_tunnel.edge import exposition
from homelab_tunnel.edge.collect import Runner, last_line, run_local
from homelab_tunnel.edge.envfile import EnvFileError
from homelab_tunnel.edge.gauges import gauges
from homelab_tunnel.edge.observe import Observer, Sample, Settings, observer_from_files
from homelab_tunnel.edge.status import SourceError, parse_status, peers, strings

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# A page younger than this is served again: two scrapers at once cost one look.
REUSE = 1.0
# Who is who on the tailnet: read again this often, or sooner for an unknown address.
KNOWN_FOR = 30.0
UNKNOWN_RETRY = 5.0
BIND_RETRY = 5.0


class Scrapers:
    """The tailnet addresses of the machines allowed to scrape, from `tailscale status`."""

    def __init__(self, names: Sequence[str], run: Runner, clock: Callable[[], float]) -> None:
        self.names = set(names)
        self.run = run
        self.clock = clock
        self.addresses: set[str] = set()
        self.read_at: float | None = None
        self.lock = threading.Lock()

    def allowed(self, address: str) -> bool:
        address = _plain(address)
        with self.lock:
            now = self.clock()
            age = now - self.read_at if self.read_at is not None else None
            if (
                age is None
                or age > KNOWN_FOR
                or (address not in self.addresses and age > UNKNOWN_RETRY)
            ):
                self.addresses = self._read()
                self.read_at = now
            return address in self.addresses

    def _read(self) -> set[str]:
        found = {name for name in self.names if _is_address(name)}
        done = self.run([("tailscale", "status", "--json")], 15.0)
        try:
            if done.returncode != 0:
                raise SourceError(last_line(done))
            status = parse_status(done.stdout)
        except SourceError as exc:
            print(f"homelab-tunnel metrics: cannot read the tailnet's users: {exc}", flush=True)
            return found
        users = status.get("User") or {}
        for key, peer in peers(status):
            user = users.get(str(peer.get("UserID"))) or {}
            if user.get("LoginName") in self.names:
                found.update(strings(peer, "TailscaleIPs", key))
        return found


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _plain(address: str) -> str:
    """An IPv4 client of a dual-stack socket arrives as ::ffff:a.b.c.d."""
    return address.removeprefix("::ffff:")


class Exporter:
    """One page at a time, from a fresh sample (or one under REUSE seconds old)."""

    def __init__(self, observer: Observer, clock: Callable[[], float] = time.monotonic) -> None:
        self.observer = observer
        self.clock = clock
        self.lock = threading.Lock()
        self.last: tuple[float, str] | None = None

    def page(self) -> str:
        with self.lock:
            if self.last is not None and self.clock() - self.last[0] < REUSE:
                return self.last[1]
            text = render_page(self.observer.sample())
            self.last = (self.clock(), text)
            return text


def render_page(look: Sample) -> str:
    sources = {name: families for name, families in look.sources.items() if families}
    return exposition.render([*exposition.merge(sources), *gauges(look)])


def handler(exporter: Exporter, scrapers: Scrapers) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "homelab-tunnel-metrics"

        def do_GET(self) -> None:
            if self.path.split("?", 1)[0] != "/metrics":
                self._answer(404, "not found: the metrics are at /metrics\n")
            elif not scrapers.allowed(self.client_address[0]):
                self._answer(403, "forbidden: not a machine in this edge's metrics.scrapers\n")
            else:
                self._answer(200, exporter.page(), CONTENT_TYPE)

        def _answer(self, code: int, body: str, kind: str = "text/plain; charset=utf-8") -> None:
            data = body.encode()
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            if args and str(args[1]) != "200":  # refusals are worth a journal line
                sys.stdout.write(
                    f"homelab-tunnel metrics: {self.address_string()} {format % args}\n"
                )
                sys.stdout.flush()

    return Handler


def tailnet_address(run: Runner) -> str:
    """The edge's own tailnet IPv4 (`tailscale ip -4`); '' before it joined."""
    done = run([("tailscale", "ip", "-4")], 10.0)
    lines = done.stdout.split()
    return lines[0] if done.returncode == 0 and lines else ""


class Service:
    """Serve until `stop`; on `reload` read the settings again and listen where they say."""

    def __init__(
        self,
        run: Runner = run_local,
        make_observer: Callable[[], Observer] = observer_from_files,
    ) -> None:
        self.run = run
        self.make_observer = make_observer
        self.reload = threading.Event()
        self.stop = threading.Event()

    def signal(self, number: int, _frame: FrameType | None) -> None:
        (self.reload if number == signal.SIGHUP else self.stop).set()

    def serve(self) -> None:
        while not self.stop.is_set():
            self.reload.clear()
            observer = self.make_observer()
            settings = observer.settings
            if not settings.scrapers:
                print("homelab-tunnel metrics: no metrics.scrapers: no endpoint", flush=True)
                self._wait()
                continue
            server = self._bind(settings, observer)
            if server is None:
                continue
            thread = threading.Thread(target=server.serve_forever, daemon=True)
            thread.start()
            self._wait()
            server.shutdown()
            server.server_close()

    def _bind(self, settings: Settings, observer: Observer) -> ThreadingHTTPServer | None:
        address = tailnet_address(self.run)
        try:
            if not address:
                raise OSError("the edge has no tailnet address yet")
            scrapers = Scrapers(settings.scrapers, self.run, time.monotonic)
            answer = handler(Exporter(observer), scrapers)
            server = ThreadingHTTPServer((address, settings.port), answer)
        except OSError as exc:
            print(
                f"homelab-tunnel metrics: cannot listen yet: {exc}; again in {BIND_RETRY:g} s",
                flush=True,
            )
            self.reload.wait(BIND_RETRY)
            return None
        server.daemon_threads = True
        names = " ".join(settings.scrapers)
        print(
            f"homelab-tunnel metrics: serving http://{address}:{settings.port}/metrics to {names}",
            flush=True,
        )
        return server

    def _wait(self) -> None:
        while not (self.reload.is_set() or self.stop.is_set()):
            self.reload.wait(1.0)


def main(argv: Sequence[str] | None = None) -> int:
    if argv:
        print("usage: python3 -m homelab_tunnel.edge.metrics", file=sys.stderr)
        return 2
    service = Service()
    signal.signal(signal.SIGHUP, service.signal)
    signal.signal(signal.SIGTERM, service.signal)
    try:
        service.serve()
    except (OSError, KeyError, ValueError, EnvFileError) as exc:
        print(f"homelab-tunnel metrics: cannot start: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
