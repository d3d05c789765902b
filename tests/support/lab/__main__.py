"""Bring the lab up by hand, look inside, take it down. Run from tests/ (or PYTHONPATH=tests):

python -m support.lab up            # up, then Enter (or Ctrl-C) tears it down
python -m support.lab up --keep     # up, and leave it running
python -m support.lab list          # runs on this machine
python -m support.lab down PREFIX   # tear one down (--all: every run no live process owns)
"""

from __future__ import annotations

import argparse
import contextlib
import sys

from support.lab.lab import Lab
from support.lab.processes import runs, teardown
from support.lab.requirements import LabUnavailable


def _print_lab(lab: Lab) -> None:
    leader = lab.edge.box.machine.leader
    print(f"lab {lab.state.prefix} up in {lab.timings['total']:.1f} s ({lab.directory})")
    for step, seconds in lab.timings.items():
        print(f"  {step}: {seconds:.1f} s")
    print(
        "look inside:\n"
        f"  ip netns list | grep {lab.state.prefix}\n"
        f"  nsenter -t {leader} -a -- tailscale status    # the droplet (its PID 1)\n"
        f"  nsenter -t {leader} -a -- journalctl -u homelab-tunnel-bootstrap\n"
        f"  ip netns exec {lab.internet.router.netns} nft list ruleset   # the router\n"
        f"  logs: {lab.directory / 'logs'}"
    )


def up(keep: bool) -> int:
    lab = Lab().up()
    _print_lab(lab)
    if keep:
        lab.keep()
        print(f"kept; tear down with: python -m support.lab down {lab.state.prefix}")
        return 0
    with contextlib.suppress(KeyboardInterrupt, EOFError):
        input("Enter tears it down: ")
    lab.down()
    return 0


def down(prefixes: list[str], every: bool) -> int:
    if every:
        prefixes = [str(run["prefix"]) for run in runs() if not run["alive"]]
    for prefix in prefixes:
        teardown(prefix)
        print(f"torn down {prefix}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m support.lab", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("up").add_argument("--keep", action="store_true")
    commands.add_parser("list")
    remove = commands.add_parser("down")
    remove.add_argument("prefix", nargs="*")
    remove.add_argument("--all", action="store_true")
    args = parser.parse_args()
    try:
        if args.command == "up":
            return up(args.keep)
        if args.command == "down":
            return down(args.prefix, args.all)
    except LabUnavailable as exc:
        print(f"lab unavailable: {exc}", file=sys.stderr)
        return 2
    for entry in runs():
        owner = "running" if entry["alive"] else "kept" if entry["kept"] else "orphaned"
        print(f"{entry['prefix']}: {owner}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
