"""How long the oldest change to Headscale's database has waited to reach the backup bucket.

Litestream 0.5 captures each transaction of the database as one level-0 LTX
file, `<16 hex TXID>-<16 hex TXID>.ltx`, in `.db.sqlite-litestream/ltx/0/`
beside the database, then uploads it to `<prefix>/db/0000/` in the bucket
(replica.go, `syncOnce`: one file per TXID, in order; the S3 client names the
level `%04x`, s3/replica_client.go:698). Retention removes
level-0 files from the bucket and the volume together, and never the newest
one in the bucket (db.go, `EnforceL0RetentionByTime`). So every local file
newer than the newest one in the bucket is a change not backed up yet, and
the age of the oldest such file is the backup's lag: what a lost volume
would lose right now. Zero when the bucket has everything.

Litestream exposes no "last uploaded" time, and its own metrics count
operations, not positions; the bucket is the only place that knows. Each
look is one LIST of the bucket's level 0, which retention keeps to a few
minutes of transactions.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from homelab_tunnel.edge import s3

DATABASE = Path("/var/lib/headscale/db.sqlite")
BACKUP_ENV = Path("/etc/homelab-tunnel/backup.env")
_LTX = re.compile(r"([0-9a-f]{16})-([0-9a-f]{16})\.ltx")

Lister = Callable[[str], list[str]]  # prefix -> keys


@dataclass(frozen=True)
class Lag:
    local_txid: int  # the newest transaction Litestream captured
    bucket_txid: int  # the newest one in the bucket
    seconds: float  # age of the oldest captured change not in the bucket; 0 when none

    def to_json(self) -> dict[str, object]:
        return {
            "local_txid": self.local_txid,
            "bucket_txid": self.bucket_txid,
            "lag_seconds": round(self.seconds, 3),
        }


def level0(database: Path = DATABASE) -> Path:
    """Litestream's local level-0 folder for `database` (its default meta path)."""
    return database.parent / f".{database.name}-litestream" / "ltx" / "0"


def _txid(name: str) -> int | None:
    match = _LTX.fullmatch(name.rsplit("/", 1)[-1])
    return int(match.group(2), 16) if match else None


class BackupWatch:
    """The bucket's position, kept between looks; the volume's, read each time."""

    def __init__(self, list_keys: Lister, prefix: str, folder: Path) -> None:
        self.list_keys = list_keys
        self.prefix = prefix.rstrip("/") + "/db/0000/"
        self.folder = folder
        # The newest transaction seen in the bucket: retention never takes it back.
        self.bucket_txid = 0

    def look(self, now: float | None = None) -> Lag:
        """`s3.S3Error` when the bucket does not answer."""
        for key in self.list_keys(self.prefix):
            txid = _txid(key)
            if txid is not None and txid > self.bucket_txid:
                self.bucket_txid = txid
        local = self._local()
        pending = [mtime for txid, mtime in local.items() if txid > self.bucket_txid]
        wall = time.time() if now is None else now
        return Lag(
            local_txid=max([*local, self.bucket_txid]),
            bucket_txid=self.bucket_txid,
            seconds=max(0.0, wall - min(pending)) if pending else 0.0,
        )

    def _local(self) -> dict[int, float]:
        found: dict[int, float] = {}
        try:
            entries = list(self.folder.iterdir())
        except FileNotFoundError:
            return found
        for entry in entries:
            txid = _txid(entry.name)
            if txid is None:
                continue
            try:
                found[txid] = entry.stat().st_mtime
            except FileNotFoundError:  # removed by retention while we looked
                continue
        return found


def bucket_lister(settings: s3.Settings) -> Lister:
    def list_keys(prefix: str) -> list[str]:
        return [key for _, _, key in s3.listing(settings, prefix)]

    return list_keys


def watch_from_env(env: Mapping[str, str], database: Path = DATABASE) -> BackupWatch:
    """From backup.env's BACKUP_* settings (the edge's key for its bucket)."""
    settings = s3.Settings.from_env(env)
    return BackupWatch(bucket_lister(settings), env["BACKUP_PREFIX"], level0(database))
