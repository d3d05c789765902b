"""Benchmark: how much a backup can lose, and what a restore costs (as root; not a test).

One lab with backups on (real Headscale, Litestream and age; moto's S3 in a box
of its own, answering as Spaces), one run, each figure against a baseline
measured in the same run:
  RPO      the seconds from a committed write (`headscale users create`) until
           the bucket holds a backup that restores it, over many writes spread
           across Litestream's cycle; baseline: its `sync-interval` as rendered.
  keys     the seconds from Headscale writing its noise key at first boot until
           the encrypted copy is in the bucket; baseline: the key timer's
           OnActiveSec, what the copy waited for before bootstrap started it.
  restore  a new droplet on a blank volume, restored from the bucket alone: the
           seconds from the old droplet gone to Headscale up (and the edge joined),
           bootstrap done and a site served through it; baseline: a new droplet on the kept
           volume (a plain replacement), measured just before.
Goals: RPO max <= 2x sync-interval; keys <= 0.25x OnActiveSec; restore to a site
served <= 1.5x a plain replacement.

    sudo .venv/bin/python bench/backups.py [--writes 20]
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from support.lab.lab import Lab  # noqa: E402
from support.lab.requirements import LabUnavailable  # noqa: E402
from support.lab.shell import wait_for  # noqa: E402

KEYS_SERVICE = "homelab-tunnel-backup-keys.service"
KEYS_TIMER = "homelab-tunnel-backup-keys.timer"
RPO_VS_INTERVAL = 2.0
KEYS_VS_TIMER = 0.25
RESTORE_VS_REPLACEMENT = 1.5


def sync_interval(lab: Lab) -> float:
    text = lab.edge.box.path("/etc/homelab-tunnel/litestream.yml").read_text()
    found = re.search(r"sync-interval: (\S+)", text)
    assert found, "litestream.yml has no sync-interval"
    value = found[1]  # Litestream's Go duration: "1s", "500ms"
    return float(value.removesuffix("ms")) / 1000 if value.endswith("ms") else float(value[:-1])


def key_timer_delay(lab: Lab) -> float:
    return lab.edge.timer_on_active(KEYS_TIMER)


def _first_key_backup(lab: Lab) -> float:
    """When the key backup service first finished well (0 if it has not)."""
    events = lab.edge.unit_events(KEYS_SERVICE)
    return next((at for at, _, said in events if said.startswith("Finished ")), 0.0)


def keys_at_first_boot(lab: Lab) -> float:
    finished = wait_for("the key backup's first run", lambda: _first_key_backup(lab), 120)
    written = (lab.edge.volume / "headscale-lib/noise_private.key").stat().st_mtime
    return finished - written


def replacement(lab: Lab, *, blank_volume: bool) -> dict[str, float]:
    """A new droplet (on the kept or a blank volume): seconds from the old one gone to
    bootstrap's headscale step (Headscale up, the edge joined), its last line, and a
    site served with the homelab online."""
    gone = time.time()
    run = lab.replace_edge(blank_volume=blank_volume)
    joined = next(at for at, line in run.lines if line.startswith("homelab-tunnel: headscale: "))
    wait_for("the homelab online", lambda: lab.home.node.peer(lab.config.name).get("Online"), 120)
    wait_for("a site served", lambda: "blog app" in lab.page("blog.lab.example"), 120)
    return {
        "headscale up, edge joined": joined - gone,
        "bootstrap": run.lines[-1][0] - gone,
        "site": time.time() - gone,
    }


def _verdict(ratio: float, goal: float) -> str:
    return f"goal <= {goal:g}: {'met' if ratio <= goal else 'missed'}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=20, help="committed writes for the RPO")
    args = parser.parse_args()
    started = time.monotonic()
    try:
        lab = Lab(backups=True)
    except LabUnavailable as exc:
        print(f"lab unavailable: {exc}")
        return 2
    with lab:
        print(f"lab {lab.state.prefix} up in {lab.timings['total']:.1f} s", flush=True)
        interval, timer = sync_interval(lab), key_timer_delay(lab)
        keys = keys_at_first_boot(lab)
        lags = sorted(lab.edge.backups("lag", str(args.writes), timeout=600)["lags"])
        kept = replacement(lab, blank_volume=False)
        restored = replacement(lab, blank_volume=True)
    rpo = lags[-1]
    print(
        f"RPO: {len(lags)} writes reached the bucket after p50 {statistics.median(lags):.2f} s, "
        f"max {rpo:.2f} s (sync-interval {interval:g} s): {rpo / interval:.2f}x, "
        f"{_verdict(rpo / interval, RPO_VS_INTERVAL)}"
    )
    print(
        f"keys: in the bucket {keys:.1f} s after Headscale wrote them (the timer would have "
        f"waited {timer:g} s): {keys / timer:.2f}x, {_verdict(keys / timer, KEYS_VS_TIMER)}"
    )
    for what in restored:
        print(
            f"{what}: {restored[what]:.1f} s after the old droplet went, restoring a blank "
            f"volume; {kept[what]:.1f} s on the kept volume"
        )
    ratio = restored["site"] / kept["site"]
    print(f"restore vs replacement, to a site served: {ratio:.2f}x, "
          f"{_verdict(ratio, RESTORE_VS_REPLACEMENT)}")  # fmt: skip
    print(f"whole benchmark: {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
