"""Benchmark: the lab's paths from visitor to homelab, one lab, one run (as root; not a test).

Page latency (p50/p95 of a small page on one kept-alive HTTPS connection) and
throughput (a 5 MB download) from the visitor through the edge's Caddy for:
  (a) the direct path;
  (b) UDP blocked between home and edge: relayed by the edge's embedded DERP;
  (c) UDP blocked, the embedded DERP off, only a public-style DERP (Tailscale's
      derper) in another namespace, rate-limited with tbf like an overloaded
      relay fleet: the seed's "images loading row by row";
  (d) the same download over the raw tailnet from the edge, without Caddy.
Goals: (a)/(d) throughput >= 0.8 (Caddy costs <= 20 %); (b)/(a) throughput
>= 0.5 and p50 latency <= 1.5x; (c)/(a) is reported, to show why public DERP
is off by default. The kernel here has no netem: no added delay, so latency
differences are processing and queueing only.

    sudo .venv/bin/python bench/lab.py [--requests 300] [--relay-rate 4mbit] [--home-uplink 100mbit]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from support.lab.addresses import HOME_ROUTER_WAN  # noqa: E402
from support.lab.lab import Lab  # noqa: E402
from support.lab.probes import probe  # noqa: E402
from support.lab.relay import PublicRelay, use_only_public_relay  # noqa: E402
from support.lab.requirements import LabUnavailable  # noqa: E402

SITE = "https://blog.lab.example"
DOWNLOAD = 5_000_000
THROUGHPUT_VS_RAW = 0.8
THROUGHPUT_RELAYED = 0.5
LATENCY_RELAYED = 1.5


def latency_ms(lab: Lab, requests: int) -> tuple[float, float]:
    """p50 and p95 of the small page, after a warm-up (TLS, upstream connection)."""
    seen = probe(lab.visitor, "fetch", f"{SITE}/", lab.roots, requests + 20, timeout=600)
    samples = sorted(seconds * 1000 for seconds in seen["seconds"][20:])
    return statistics.median(samples), samples[int(len(samples) * 0.95) - 1]


def throughput_mbps(box: Any, url: str, roots: Path, rounds: int = 4) -> float:
    """DOWNLOAD bytes `rounds` times on one connection; the median of all but the first
    (which also pays for the connection and the upstream's), in megabits per second."""
    seen = probe(box, "fetch", f"{url}/big?bytes={DOWNLOAD}", roots, rounds, timeout=900)
    assert seen["status"] == 200 and seen["bytes"] == DOWNLOAD, seen
    return statistics.median(DOWNLOAD * 8 / seconds / 1e6 for seconds in seen["seconds"][1:])


def measure(lab: Lab, label: str, requests: int) -> dict[str, float]:
    p50, p95 = latency_ms(lab, requests)
    result = {"p50_ms": p50, "p95_ms": p95, "mbps": throughput_mbps(lab.visitor, SITE, lab.roots)}
    print(f"({label}) p50 {p50:.2f} ms, p95 {p95:.2f} ms, {result['mbps']:.1f} Mbit/s", flush=True)
    return result


def relayed_both_ways(lab: Lab) -> None:
    lab.edge.node.wait_relayed("homelab", timeout=60)
    lab.home.node.wait_relayed(lab.config.name, timeout=60)


def limit_home_uplink(lab: Lab, rate: str) -> None:
    """tbf on the home router's WAN egress: the homelab's upload, as an ISP sells it."""
    lab.home.router.run(["tc", "qdisc", "add", "dev", "eth0", "root", "tbf", "rate", rate,
                         "burst", "64kbit", "latency", "200ms"])  # fmt: skip


def run(lab: Lab, args: argparse.Namespace) -> dict[str, dict[str, float]]:
    if args.home_uplink:
        limit_home_uplink(lab, args.home_uplink)
        print(f"home uplink limited to {args.home_uplink}", flush=True)
    results = {"a": measure(lab, "a: direct", args.requests)}
    tailnet = f"http://{lab.edge.node.peer('homelab')['TailscaleIPs'][0]}:8080"
    raw = throughput_mbps(lab.edge.box, tailnet, lab.roots)
    results["d"] = {"mbps": raw}
    print(f"(d: raw tailnet, no Caddy) {raw:.1f} Mbit/s", flush=True)
    edge = [lab.edge.droplet.own, lab.edge.droplet.anchor]
    with lab.internet.udp_blocked(HOME_ROUTER_WAN.address, edge):
        relayed_both_ways(lab)
        results["b"] = measure(lab, "b: embedded DERP", args.requests)
        relay = PublicRelay(lab, args.relay_rate)
        relay.start()
        use_only_public_relay(lab)
        relayed_both_ways(lab)
        results["c"] = measure(lab, f"c: public-style DERP at {args.relay_rate}", args.requests)
    return results


def _verdict(ratio: float, goal: float, *, at_most: bool = False) -> str:
    met = ratio <= goal if at_most else ratio >= goal
    return f"goal {'<=' if at_most else '>='} {goal}: {'ok' if met else 'missed'}"


def report(results: dict[str, dict[str, float]]) -> None:
    a, b, c, d = (results[key] for key in "abcd")
    raw, relayed = a["mbps"] / d["mbps"], b["mbps"] / a["mbps"]
    latency = b["p50_ms"] / a["p50_ms"]
    print(f"(a)/(d) throughput {raw:.2f} ({_verdict(raw, THROUGHPUT_VS_RAW)})")
    print(f"(b)/(a) throughput {relayed:.2f} ({_verdict(relayed, THROUGHPUT_RELAYED)})")
    print(
        f"(b)/(a) p50 latency {latency:.2f}x ({_verdict(latency, LATENCY_RELAYED, at_most=True)})"
    )
    print(
        f"(c)/(a) throughput {c['mbps'] / a['mbps']:.2f}, p50 latency "
        f"{c['p50_ms'] / a['p50_ms']:.2f}x, p95 latency {c['p95_ms'] / a['p95_ms']:.2f}x"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300, help="small-page requests per path")
    parser.add_argument("--relay-rate", default="4mbit", help="tbf rate of the public-style DERP")
    parser.add_argument(
        "--home-uplink",
        metavar="RATE",
        help="limit the home router's upload (tbf, e.g. 100mbit); default: no limit, so the "
        "lab's two CPUs are the bottleneck",
    )
    args = parser.parse_args()
    started = time.monotonic()
    try:
        lab = Lab()
    except LabUnavailable as exc:
        print(f"lab unavailable: {exc}")
        return 2
    with lab:
        print(f"lab {lab.state.prefix} up in {lab.timings['total']:.1f} s", flush=True)
        results = run(lab, args)
    report(results)
    print(f"whole benchmark: {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
