"""Benchmark: from "droplet created" to a site served with a Pebble certificate (as root).

The lab's booted edge (tests/support/lab/droplet_edge.py): cloud-init runs
our user_data, bootstrap installs from the package mirror, Caddy gets its
certificates from Pebble. Each figure is the median of `--runs` droplets:
  warm   a replacement on the kept volume (the certificates, Headscale's state
         and the ssh host keys on it): created -> Headscale's name served
         over HTTPS with a Pebble certificate, and -> the blog served through
         the tunnel (the homelab reconnected).
  cold   a droplet on an empty volume: formatted, a fresh Headscale, every
         certificate issued by Pebble: created -> Headscale's name served.
Each boot's time is split into its shares: until the bootstrap unit starts
(systemd and cloud-init), each bootstrap step (from its journal line), and
from bootstrap's last line to the site served. The baseline is the warm
boot, measured in the same run; the goal, a guard against regressions set
from the first measurement (1.3x on the 2-CPU machine, the certificates
and the volume's formatting being the difference): cold <= 2x warm.
Packages come from the lab's mirror at memory speed: on DigitalOcean the
downloads add seconds to both.

    sudo .venv/bin/python bench/edge_boot.py [--runs 1]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from support.lab.lab import Lab  # noqa: E402
from support.lab.probes import curl  # noqa: E402
from support.lab.requirements import LabUnavailable  # noqa: E402
from support.lab.shell import wait_for  # noqa: E402

from homelab_tunnel.render.user_data import BOOTSTRAP_UNIT  # noqa: E402

COLD_VS_WARM = 2.0


def _served(lab: Lab, url: str) -> bool:
    return curl(lab.visitor, url, "-f", "-o", "/dev/null", roots=lab.roots).returncode == 0


def _shares(lab: Lab, created: float, served: float) -> dict[str, float]:
    """Seconds per part of the boot, from the bootstrap unit's journal lines."""
    argv = ["journalctl", "-b", "-u", BOOTSTRAP_UNIT, "-o", "json", "--no-pager"]
    lines = []
    for line in lab.edge.box.run(argv).stdout.splitlines():
        entry = json.loads(line)
        if isinstance(entry.get("MESSAGE"), str):
            lines.append((int(entry["__REALTIME_TIMESTAMP"]) / 1e6, entry["MESSAGE"]))
    shares = {"boot, cloud-init": lines[0][0] - created}
    previous = lines[0][0]
    for at, message in lines:
        if message.startswith("homelab-tunnel: software "):
            shares["software (loader)"] = at - previous
            previous = at
        elif message.startswith("homelab-tunnel: ") and ": " in message[16:]:
            step = message[16:].split(":", 1)[0]
            if " " not in step:  # "packages", not "state volume is blank"
                shares[step] = at - previous
                previous = at
    shares["to the site served"] = served - previous
    return shares


def _boot(lab: Lab, *, blank_volume: bool) -> tuple[float, float, dict[str, float]]:
    """A new droplet: seconds to Headscale's name served, to the blog (warm only), shares."""
    lab.edge.destroy()
    if blank_volume:
        lab.edge.wipe_volume()
    created = time.time()
    lab.edge.create()
    health = f"https://{lab.config.headscale.domain}/health"
    wait_for("Headscale's name over HTTPS", lambda: _served(lab, health), 300, 0.1)
    served = time.time()
    blog = 0.0
    if not blank_volume:
        wait_for("the blog", lambda: "blog app" in lab.page("blog.lab.example"), 120, 0.1)
        blog = time.time() - created
    return served - created, blog, _shares(lab, created, served)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    try:
        lab = Lab().up()
    except LabUnavailable as exc:
        print(f"edge boot benchmark skipped: {exc}")
        return 0
    try:
        warm = [_boot(lab, blank_volume=False) for _ in range(args.runs)]
        cold = [_boot(lab, blank_volume=True) for _ in range(args.runs)]
    finally:
        lab.down()
    warm_served = statistics.median(run[0] for run in warm)
    cold_served = statistics.median(run[0] for run in cold)
    print(f"warm (kept volume): Headscale's name served {warm_served:.1f} s after the droplet "
          f"was created, the blog {statistics.median(run[1] for run in warm):.1f} s")  # fmt: skip
    print(f"cold (empty volume): Headscale's name served {cold_served:.1f} s")
    for name, runs in (("warm", warm), ("cold", cold)):
        shares = runs[len(runs) // 2][2]
        total = sum(shares.values())
        parts = ", ".join(f"{step} {seconds:.1f} s ({seconds / total:.0%})"
                          for step, seconds in shares.items() if seconds >= 0.05)  # fmt: skip
        print(f"  {name}: {parts}")
    ratio = cold_served / warm_served
    print(f"cold / warm: {ratio:.2f}x (goal <= {COLD_VS_WARM}x)")
    return 0 if ratio <= COLD_VS_WARM else 1


if __name__ == "__main__":
    sys.exit(main())
