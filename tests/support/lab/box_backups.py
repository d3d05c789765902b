"""The edge's backups as the edge sees them: `python3 box_backups.py lag COUNT | shipped ...`.

Run in the edge box with its python3 and PYTHONPATH=/usr/local/lib/homelab-tunnel:
the bucket is listed with the edge's own client and settings (backup.env), and
restored with its Litestream and litestream.yml, exactly as restore-state.sh
restores. Each command prints one JSON document.

lag COUNT                  COUNT committed writes (`headscale users create`), the
                           i-th i/COUNT of a second after the previous one was
                           seen, so they fall at different points of Litestream's
                           1 s cycle: for each, the seconds from the commit until
                           the bucket held an object whose restore contains it.
shipped SQL EXPECTED [S]   wait (at most S seconds, default 20) until a restore of
                           the newest backup answers SQL (one value) with EXPECTED:
                           {"in_bucket": true, "seconds": ...}, or {"in_bucket": false}.
sealed [S]                 wait (at most S seconds, default 20) until the newest
                           backup is a state a seal in the bucket names (seal.py's
                           digest): {"sealed": true} or {"sealed": false}.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from homelab_tunnel.edge import envfile, s3

CONF = Path("/etc/homelab-tunnel")
OUT = Path("/run/homelab-tunnel-lab/backups-probe.sqlite")
ENV = envfile.read(CONF / "backup.env")  # the edge's one parser of it
SETTINGS = s3.Settings.from_env(ENV)


def objects() -> set[str]:
    return {key for _, _, key in s3.listing(SETTINGS, f"{ENV['BACKUP_PREFIX']}/db/")}


def restored(sql: str) -> str:
    """SQL's one value on a restore of the newest backup, as restore-state.sh makes it."""
    OUT.parent.mkdir(parents=True, exist_ok=True)
    for leftover in OUT.parent.glob(f"{OUT.name}*"):
        leftover.unlink()
    subprocess.run(
        ["litestream", "restore", "-config", CONF / "litestream.yml", "-o", OUT,
         "/var/lib/headscale/db.sqlite"],
        env={**os.environ, **ENV}, check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    with sqlite3.connect(f"file:{OUT}?mode=ro", uri=True) as connection:
        row = connection.execute(sql).fetchone()
    connection.close()
    return str(row[0]) if row else ""


class NotShipped(Exception):
    pass


def until(sql: str, expected: str, since: float, seen: set[str], limit: float) -> float:
    """Seconds from `since` until a new object's restore answers `expected` (or NotShipped)."""
    while True:
        now = objects()
        if now - seen:
            found = time.monotonic()
            if restored(sql) == expected:
                return found - since
            seen = now
        if time.monotonic() - since > limit:
            raise NotShipped(f"not in the bucket after {limit:g}s: {sql} = {expected}")
        time.sleep(0.02)


def lag(count: str) -> None:
    lags = []
    for index in range(int(count)):
        time.sleep(index / int(count))
        name = f"rpo-{os.getpid()}-{index}"
        seen = objects()
        subprocess.run(["headscale", "users", "create", name], check=True, capture_output=True)
        committed = time.monotonic()
        sql = f"SELECT count(*) FROM users WHERE name = '{name}'"
        try:
            lags.append(until(sql, "1", committed, seen, 20))
        except NotShipped as exc:
            raise SystemExit(str(exc)) from None
    print(json.dumps({"lags": lags}))


def shipped(sql: str, expected: str, limit: str = "20") -> None:
    started = time.monotonic()
    seen = objects()
    try:
        done = restored(sql) == expected
        seconds = 0.0 if done else until(sql, expected, started, seen, float(limit))
    except NotShipped:
        print(json.dumps({"in_bucket": False}))
        return
    print(json.dumps({"in_bucket": True, "seconds": seconds}))


def sealed(limit: str = "20") -> None:
    from homelab_tunnel.edge.backups import Backup
    from homelab_tunnel.edge.seal import digest, listed

    backup = Backup.load(Path("/"))
    deadline = time.monotonic() + float(limit)
    while time.monotonic() < deadline:
        restored("SELECT 1")
        if digest(OUT) in {seal.digest for seal in listed(backup)}:
            print(json.dumps({"sealed": True}))
            return
        time.sleep(0.2)
    print(json.dumps({"sealed": False}))


COMMANDS = {"lag": lag, "shipped": shipped, "sealed": sealed}

if __name__ == "__main__":
    COMMANDS[sys.argv[1]](*sys.argv[2:])  # type: ignore[operator]
