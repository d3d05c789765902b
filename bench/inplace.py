"""Benchmark: a site added in place against the same change by a new droplet (as root; not a test).

One lab, one run, a load on an existing site throughout (a new connection per
request and a kept-alive one, 20 requests a second each):
  (a) in place, `--rounds` times, each at a random point of the config
      agent's 10 s cycle: the apply (the records, then the config object)
      until the new site answers with its Pebble certificate, and where the
      time went (the writes, the agent noticing and applying, the
      certificate);
  (b) replacement, as every site change was before the config channel: the
      same kind of change deployed by a new droplet on the kept volume (the
      config agent stopped first, so only the new droplet's boot applies it),
      from the apply until the new site answers.
Goal: (a)/(b) time <= 0.25 and no failed request in (a).

The lab's replacement is a lower bound of DigitalOcean's: no droplet to
create, no image to boot, no apt (plan-summary tells users to expect 3-5
minutes there).

    sudo .venv/bin/python bench/inplace.py [--rounds 8]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from support.lab.deploy import SITES, ZONE, lab_config_document  # noqa: E402
from support.lab.lab import Lab  # noqa: E402
from support.lab.probes import LoadSession  # noqa: E402
from support.lab.requirements import LabUnavailable  # noqa: E402

from homelab_tunnel.edge.config_agent import INTERVAL  # noqa: E402

TIME_VS_REPLACEMENT = 0.25
LOADED = "https://blog.lab.example/"
FIRST_PORT = 3001


def _site(number: int) -> dict[str, Any]:
    return {"domain": f"new{number}.{ZONE}", "upstream": "homelab", "port": FIRST_PORT + number}


def _document(lab: Lab, count: int) -> dict[str, Any]:
    """The lab's two sites and `count` new ones."""
    sites = [
        {"domain": f"{name}.{ZONE}", "upstream": "homelab", "port": port} for name, port in SITES
    ]
    sites += [_site(number) for number in range(count)]
    return lab_config_document(lab.pebble.roots(), sites=sites)


def _served(lab: Lab, number: int, since: float, timeout: float = 300) -> float:
    """Seconds from `since` until new<number> answers over HTTPS (Pebble's certificate)."""
    domain = _site(number)["domain"]
    while f"new{number} app" not in lab.page(domain):
        if time.monotonic() - since > timeout:
            raise TimeoutError(f"{domain} not served within {timeout} s")
        time.sleep(0.2)
    return time.monotonic() - since


def in_place(lab: Lab, number: int) -> dict[str, Any]:
    """Also where the time goes: the apply's writes, the agent noticing and applying the
    version (its record on the volume), the new name's certificate and first answer."""
    applied = lab.edge.volume / "config" / "applied.json"
    with LoadSession(lab.visitor, LOADED, lab.roots, "blog app") as load:
        time.sleep(random.uniform(0, INTERVAL))  # an apply comes at any point of the agent's cycle
        started, wall = time.monotonic(), time.time()
        lab.apply(_document(lab, number + 1))
        written = time.monotonic() - started
        seconds = _served(lab, number, started)
        installed = applied.stat().st_mtime - wall
        time.sleep(2)
        seen = load.stop()
    print(
        f"(a) in place: new{number} served after {seconds:.1f} s (written {written:.1f} s, "
        f"applied {installed:.1f} s); {_load(seen)}",
        flush=True,
    )
    return {**seen, "served_after": seconds, "written": written, "applied": installed}


def replacement(lab: Lab, number: int) -> dict[str, Any]:
    lab.edge.box.run(["systemctl", "stop", "homelab-tunnel-config.service"])
    with LoadSession(lab.visitor, LOADED, lab.roots, "blog app") as load:
        started = time.monotonic()
        lab.apply(_document(lab, number + 1))
        replaced = threading.Thread(target=lab.replace_edge, daemon=True)
        replaced.start()
        seconds = _served(lab, number, started)
        replaced.join(timeout=300)
        time.sleep(2)
        seen = load.stop()
    print(f"(b) replacement: new{number} served after {seconds:.1f} s; {_load(seen)}", flush=True)
    return {**seen, "served_after": seconds}


def _load(seen: dict[str, Any]) -> str:
    errors = "".join(f"\n    failed: {error}" for error in seen["errors"][:3])
    return (
        f"{seen['requests']} requests to the blog, {seen['failed']} failed, "
        f"{seen['retried']} sent again on a new connection, longest gap "
        f"{seen['longest_gap']:.1f} s{errors}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8, help="sites added in place")
    args = parser.parse_args()
    started = time.monotonic()
    try:
        lab = Lab()
    except LabUnavailable as exc:
        print(f"lab unavailable: {exc}")
        return 2
    with lab:
        print(f"lab {lab.state.prefix} up in {lab.timings['total']:.1f} s", flush=True)
        apps = {FIRST_PORT + n: f"new{n}" for n in range(args.rounds + 1)}
        lab.home.start_app(apps, daemon="new")
        rounds = [in_place(lab, number) for number in range(args.rounds)]
        replaced = replacement(lab, args.rounds)
    seconds = statistics.median(r["served_after"] for r in rounds)
    failed = sum(r["failed"] for r in rounds)
    ratio = seconds / replaced["served_after"]
    met = ratio <= TIME_VS_REPLACEMENT and failed == 0
    print(
        f"in place: p50 {seconds:.1f} s (max {max(r['served_after'] for r in rounds):.1f} s), "
        f"{failed} failed of {sum(r['requests'] for r in rounds)} requests; replacement: "
        f"{replaced['served_after']:.1f} s, {replaced['failed']} failed of {replaced['requests']}"
    )
    print(
        f"(a)/(b) time {ratio:.2f}x, failed requests in place {failed}: goal <= "
        f"{TIME_VS_REPLACEMENT:g}x and 0 failed: {'met' if met else 'missed'}"
    )
    parts = {key: statistics.median(r[key] for r in rounds) for key in ("written", "applied")}
    print(
        f"in place, p50: the apply's writes {parts['written']:.1f} s, applied by the edge "
        f"{parts['applied'] - parts['written']:.1f} s later (the agent checks every "
        f"{INTERVAL:g} s), served {seconds - parts['applied']:.1f} s after that (certificate, "
        "first answer)"
    )
    print(f"whole benchmark: {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
