"""Benchmark: forwarded ports against the raw tailnet path, one lab, one run (as root; not a test).

For TCP and UDP, throughput (iperf3, 5 s, the median of three) and the p50 of
small round trips (300 after 20 to warm up, to the homelab's echo), on:
  (a) the visitor through the reserved IP: the cloud's NAT, the edge's nftables
      DNAT and masquerade, then the tailnet to the homelab;
  (b) the edge itself straight to the homelab's tailnet address: the same
      tailnet hop without the public leg and the kernel forwarding.
Goals, on the direct path: (a)/(b) throughput >= 0.8 and p50 <= 1.2x. UDP is
sent as fast as iperf3 can (1200-byte datagrams fit tailscale0's 1280 MTU);
its throughput is what arrives. The kernel here has no netem: no added
delay, so latency differences are processing and queueing only.

    sudo .venv/bin/python bench/ports.py [--round-trips 300] [--home-uplink 100mbit]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from support.lab.addresses import RESERVED_IP  # noqa: E402
from support.lab.boxes import Box  # noqa: E402
from support.lab.edge import SERVICES  # noqa: E402
from support.lab.lab import Lab  # noqa: E402
from support.lab.probes import probe  # noqa: E402
from support.lab.requirements import LabUnavailable  # noqa: E402
from support.lab.shell import wait_for  # noqa: E402

IPERF = 5201
ECHO = {"tcp": 25566, "udp": 27015}  # the homelab's peer echoes
PORTS = [
    {"protocol": "tcp", "port": IPERF, "upstream": "homelab"},  # iperf3's control and TCP data
    {"protocol": "udp", "port": IPERF, "upstream": "homelab"},
    {"protocol": "tcp", "port": ECHO["tcp"], "upstream": "homelab"},
    {"protocol": "udp", "port": ECHO["udp"], "upstream": "homelab"},
]
THROUGHPUT = 0.8
LATENCY = 1.2


def iperf_mbps(box: Box, address: str, protocol: str, rounds: int = 3) -> float:
    """What arrives at the homelab, in Mbit/s: the median of `rounds` 5 s runs."""
    udp = ["-u", "-b", "0", "-l", "1200"] if protocol == "udp" else []
    rates = []
    for _ in range(rounds):
        done = box.run(
            ["iperf3", "-c", address, "-p", str(IPERF), "-t", "5", "--json", *udp], timeout=60
        )
        end = json.loads(done.stdout)["end"]
        rates.append(end["sum_received"]["bits_per_second"] / 1e6)
    return statistics.median(rates)


def p50_ms(box: Box, address: str, protocol: str, count: int) -> float:
    seen = probe(box, "round-trips", protocol, address, ECHO[protocol], count + 20, timeout=300)
    return statistics.median(seen["seconds"][20:]) * 1000


def measure(lab: Lab, count: int) -> dict[str, dict[str, float]]:
    homelab = str(lab.edge.node.peer("homelab")["TailscaleIPs"][0])
    paths = {"a": (lab.visitor, RESERVED_IP), "b": (lab.edge.box, homelab)}
    results: dict[str, dict[str, float]] = {}
    for path, (box, address) in paths.items():
        for protocol in ("tcp", "udp"):
            lab.edge.node.wait_direct("homelab")
            key = f"{path}/{protocol}"
            results[key] = {
                "mbps": iperf_mbps(box, address, protocol),
                "p50_ms": p50_ms(box, address, protocol, count),
            }
            print(f"({key}) {results[key]['mbps']:.0f} Mbit/s, p50 "
                  f"{results[key]['p50_ms']:.3f} ms", flush=True)  # fmt: skip
    return results


def report(results: dict[str, dict[str, float]]) -> None:
    for protocol in ("tcp", "udp"):
        a, b = results[f"a/{protocol}"], results[f"b/{protocol}"]
        throughput, latency = a["mbps"] / b["mbps"], a["p50_ms"] / b["p50_ms"]
        ok = (throughput >= THROUGHPUT, latency <= LATENCY)
        print(
            f"{protocol.upper()} (a)/(b): throughput {throughput:.2f} (goal >= {THROUGHPUT}: "
            f"{'ok' if ok[0] else 'missed'}), p50 {latency:.2f}x (goal <= {LATENCY}: "
            f"{'ok' if ok[1] else 'missed'})"
        )


def limit_home_uplink(lab: Lab, rate: str) -> None:
    """tbf on the home router's WAN egress: the homelab's upload, as an ISP sells it."""
    lab.home.router.run(["tc", "qdisc", "add", "dev", "eth0", "root", "tbf", "rate", rate,
                         "burst", "64kbit", "latency", "200ms"])  # fmt: skip


def start(lab: Lab) -> None:
    home = lab.home.box
    home.spawn("iperf3", ["iperf3", "-s", "-p", str(IPERF)])
    for protocol, port in ECHO.items():
        home.spawn(f"{protocol}-echo", [sys.executable, SERVICES, "peer-echo", protocol, port])
    lab.apply_in_place(lab.document(ports=PORTS))
    wait_for(
        "the forwarded echo",
        lambda: probe(lab.visitor, "exchange", "udp", RESERVED_IP, ECHO["udp"], "hi")["reply"],
        20,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--round-trips", type=int, default=300, help="round trips per path")
    parser.add_argument("--home-uplink", metavar="RATE", help="limit the home's upload (tbf)")
    args = parser.parse_args()
    if shutil.which("iperf3") is None:
        print("iperf3 is not installed (make test-tools installs it)")
        return 2
    started = time.monotonic()
    try:
        lab = Lab()
    except LabUnavailable as exc:
        print(f"lab unavailable: {exc}")
        return 2
    with lab:
        print(f"lab {lab.state.prefix} up in {lab.timings['total']:.1f} s", flush=True)
        if args.home_uplink:
            limit_home_uplink(lab, args.home_uplink)
            print(f"home uplink limited to {args.home_uplink}", flush=True)
        start(lab)
        results: Any = measure(lab, args.round_trips)
    report(results)
    print(f"whole benchmark: {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
