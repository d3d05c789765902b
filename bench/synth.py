"""Benchmark: full `homelab-tunnel synth` vs a floor cdktf app, measured in the same run.

The floor is the least any cdktf + DigitalOcean app can cost: start Python,
import cdktf and the provider bindings (which starts jsii's Node process),
synthesize one droplet. Each side runs in a fresh process, alternating, and
the medians are compared. Goal: ratio <= 1.3.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GOAL = 1.3

FLOOR = """
from homelab_tunnel.infra.jsii_node import use_bundled_node
use_bundled_node()
import cdktf
from cdktf_cdktf_provider_digitalocean.droplet import Droplet
from cdktf_cdktf_provider_digitalocean.provider import DigitaloceanProvider
app = cdktf.App(outdir={outdir!r})
stack = cdktf.TerraformStack(app, "floor")
DigitaloceanProvider(stack, "digitalocean")
Droplet(stack, "edge", name="edge", image="ubuntu-24-04-x64", size="s-1vcpu-1gb", region="fra1")
app.synth()
"""


def _time(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, timeout=300)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--config", default=str(ROOT / "examples" / "homelab-tunnel.toml"))
    args = parser.parse_args()
    cli = str(Path(sys.executable).parent / "homelab-tunnel")
    floor_times: list[float] = []
    full_times: list[float] = []
    with tempfile.TemporaryDirectory() as scratch:
        floor = [sys.executable, "-c", FLOOR.format(outdir=str(Path(scratch) / "floor"))]
        full = [cli, "synth", "--config", args.config, "--out", str(Path(scratch) / "full")]
        _time(floor)  # warm the page cache for both before measuring
        _time(full)
        for _ in range(args.runs):
            floor_times.append(_time(floor))
            full_times.append(_time(full))
    floor_median = statistics.median(floor_times)
    full_median = statistics.median(full_times)
    ratio = full_median / floor_median
    print(f"floor app (import + 1 droplet): median {floor_median:.2f}s over {args.runs} runs")
    print(f"homelab-tunnel synth (example): median {full_median:.2f}s over {args.runs} runs")
    verdict = "ok" if ratio <= GOAL else "over goal"
    print(f"ratio {ratio:.2f} (goal <= {GOAL}): {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
