"""Frames for `homelab-tunnel status`, streamed over the one ssh session that started this.

    python3 -m homelab_tunnel.edge.watch [--interval 2] [--count N]

Looks at the edge every `interval` seconds and writes one frame (frame.py)
per look as a line of JSON on stdout; the first frame comes one interval
after the first look, so its rates cover that interval. Ends after `count`
frames or, without a count, when stdin closes: the operator's ssh went
away, or `status` quit. One process, one ssh session, for the whole view.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import sys
import time
from collections.abc import Sequence
from typing import IO

from homelab_tunnel.edge.envfile import EnvFileError
from homelab_tunnel.edge.frame import frame
from homelab_tunnel.edge.observe import Observer, observer_from_files


def _closed(stdin: IO[str] | None, seconds: float) -> bool:
    """Wait up to `seconds`; whether stdin ended meanwhile (the other side is gone)."""
    if stdin is None or stdin.closed:
        time.sleep(seconds)
        return False
    try:
        ready, _, _ = select.select([stdin], [], [], seconds)
    except (OSError, ValueError):
        time.sleep(seconds)
        return False
    return bool(ready) and not os.read(stdin.fileno(), 4096)


def stream(observer: Observer, interval: float, count: int, stdin: IO[str] | None) -> int:
    previous = observer.sample()
    sent = 0
    # A stream without end ends with its reader; a counted one runs its count.
    stdin = stdin if count <= 0 else None
    while count <= 0 or sent < count:
        left = interval - (time.monotonic() - previous.clock)
        if _closed(stdin, max(0.0, left)):
            return 0
        current = observer.sample()
        try:
            sys.stdout.write(json.dumps(frame(current, previous), separators=(",", ":")) + "\n")
            sys.stdout.flush()
        except BrokenPipeError:
            return 0
        previous = current
        sent += 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m homelab_tunnel.edge.watch")
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between frames")
    parser.add_argument("--count", type=int, default=0, help="frames to send (0: until stdin ends)")
    args = parser.parse_args(argv)
    if not 0.2 <= args.interval <= 3600:
        parser.error("--interval: between 0.2 and 3600 seconds")
    try:
        observer = observer_from_files()
    except (OSError, KeyError, ValueError, EnvFileError) as exc:
        print(f"homelab-tunnel watch: cannot start: {exc}", file=sys.stderr)
        return 2
    return stream(observer, args.interval, args.count, sys.stdin)


if __name__ == "__main__":
    sys.exit(main())
