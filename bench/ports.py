"""Benchmark: forwarded ports against the raw tailnet path, one lab, one run (as root; not a test).

For TCP and UDP, throughput (iperf3 -R, 5 s: the homelab sends, as when it
serves) and the p50 of small round trips (to the homelab's echo), on:
  (a) the visitor through the reserved IP: the cloud's NAT, the edge's nftables
      DNAT and masquerade, then the tailnet to the homelab;
  (b) the edge itself straight to the homelab's tailnet address: the same
      tailnet hop without the public leg and the kernel forwarding;
  (c) latency only: the visitor to an echo on the edge itself, at the
      droplet's own address (a UDP socket on the edge answers the reserved IP
      from there): the public leg alone. (a) - (b) - (c) is about what the
      forwarding itself adds.
The paths take turns, three rounds of one iperf3 run and 100 round trips each
(after 20 to warm up), and the medians are compared, so the load of a shared
machine falls on both alike. Goals, on the direct path: (a)/(b) throughput
>= 0.8 and p50 <= 1.2x. UDP is sent as fast as iperf3 can (1200-byte
datagrams fit tailscale0's 1280 MTU); its throughput is what arrives. The
kernel here has no netem: no added delay, so latency differences are
processing and queueing only.

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
from support.lab.droplet_edge import PROBES as PROBE_FILES  # noqa: E402
from support.lab.lab import Lab  # noqa: E402
from support.lab.probes import probe  # noqa: E402
from support.lab.requirements import LabUnavailable  # noqa: E402
from support.lab.shell import wait_for  # noqa: E402

SERVICES = PROBE_FILES["box_services.py"]
IPERF = 5201
ECHO = {"tcp": 25566, "udp": 27015}  # the homelab's peer echoes
EDGE_ECHO = {"tcp": 28016, "udp": 28015}  # (c): on the edge, not forwarded
PORTS = [
    {"protocol": "tcp", "port": IPERF, "upstream": "homelab"},  # iperf3's control and TCP data
    {"protocol": "udp", "port": IPERF, "upstream": "homelab"},
    {"protocol": "tcp", "port": ECHO["tcp"], "upstream": "homelab"},
    {"protocol": "udp", "port": ECHO["udp"], "upstream": "homelab"},
]
THROUGHPUT = 0.8
LATENCY = 1.2


def iperf_mbps(box: Box, address: str, protocol: str) -> float:
    """What arrives from the homelab in one 5 s run, in Mbit/s."""
    udp = ["-u", "-b", "0", "-l", "1200"] if protocol == "udp" else []
    done = box.run(
        ["iperf3", "-c", address, "-p", str(IPERF), "-R", "-t", "5", "--json", *udp], timeout=60
    )
    return float(json.loads(done.stdout)["end"]["sum_received"]["bits_per_second"]) / 1e6


def round_trips_ms(box: Box, address: str, port: int, protocol: str, count: int) -> list[float]:
    seen = probe(box, "round-trips", protocol, address, port, count + 20, timeout=300)
    return [seconds * 1000 for seconds in seen["seconds"][20:]]


def measure(lab: Lab, count: int, rounds: int = 3) -> dict[str, dict[str, float]]:
    """Both paths in turn, `rounds` times: the machine's load falls on both alike."""
    homelab = str(lab.edge.node.peer("homelab")["TailscaleIPs"][0])
    paths = {"a": (lab.visitor, RESERVED_IP), "b": (lab.edge.box, homelab)}
    results: dict[str, dict[str, float]] = {}
    for protocol in ("tcp", "udp"):
        rates: dict[str, list[float]] = {path: [] for path in paths}
        trips: dict[str, list[float]] = {path: [] for path in (*paths, "c")}
        for _ in range(rounds):
            lab.edge.node.wait_direct("homelab")
            for path, (box, address) in paths.items():
                rates[path].append(iperf_mbps(box, address, protocol))
                trips[path] += round_trips_ms(
                    box, address, ECHO[protocol], protocol, count // rounds
                )
            trips["c"] += round_trips_ms(
                lab.visitor, lab.edge.droplet.own, EDGE_ECHO[protocol], protocol, count // rounds
            )
        for path in trips:
            key = f"{path}/{protocol}"
            results[key] = {"p50_ms": statistics.median(trips[path])}
            if path in rates:
                results[key]["mbps"] = statistics.median(rates[path])
            rate = f"{results[key]['mbps']:.0f} Mbit/s, " if path in rates else ""
            print(f"({key}) {rate}p50 {results[key]['p50_ms']:.3f} ms", flush=True)
    return results


def report(results: dict[str, dict[str, float]]) -> None:
    for protocol in ("tcp", "udp"):
        a, b, c = (results[f"{path}/{protocol}"] for path in "abc")
        throughput, latency = a["mbps"] / b["mbps"], a["p50_ms"] / b["p50_ms"]
        ok = (throughput >= THROUGHPUT, latency <= LATENCY)
        print(
            f"{protocol.upper()} (a)/(b): throughput {throughput:.2f} (goal >= {THROUGHPUT}: "
            f"{'ok' if ok[0] else 'missed'}), p50 {latency:.2f}x (goal <= {LATENCY}: "
            f"{'ok' if ok[1] else 'missed'}); the forwarding's own p50, (a) - (b) - (c): "
            f"{a['p50_ms'] - b['p50_ms'] - c['p50_ms']:+.3f} ms"
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
        echo = [sys.executable, SERVICES, "peer-echo", protocol, EDGE_ECHO[protocol]]
        lab.edge.box.spawn(f"{protocol}-echo", echo)
    lab.apply_in_place(lab.document(ports=PORTS))
    # The paths, not the cloud firewall (tests/lab/test_ports.py proves it): the edge's own
    # echo ports are in no [[ports]] entry, so the lab's firewall would drop them.
    lab.cloud.remove_firewall()
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
