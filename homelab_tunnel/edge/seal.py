"""Seals: what the edge vouches for in its database, so a restore installs only that.

  python3 -m homelab_tunnel.edge.seal     (homelab-tunnel-seal.timer, every 30 s)

Litestream 0.5 cannot sign what it uploads, and whoever holds the bucket's
key pair can write LTX files of any content. So the edge, every 30 seconds
and right after the key backup, computes a digest of its database and, when
it changed, uploads a seal: the digest and the time, with a MAC from the
edge secret (derive.py, purpose "seal"), as `<prefix>/seals/<time>-<digest>`.
A restore installs a database only when a valid seal names its digest.

The digest covers every table and column except what changes on its own while
nodes come and go (CHURN): who is in the tailnet and with which keys,
addresses, users, tags, routes, expiry, pre-auth and API keys. Excluded: a
node's endpoints, disco key, host info and last-seen time, and the rows'
updated_at. Headscale takes the first three from the node again when it
connects; a planted value there cannot add a node, a key, an address, a tag or
an approved route. Rows are read in one read transaction of a read-only
connection (as root, SQLite gives any -wal/-shm it creates the database's
owner), ordered by their content.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import sys
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from homelab_tunnel.edge import s3
from homelab_tunnel.edge.backups import DATABASE, Backup, BackupError, locked, root_dir
from homelab_tunnel.edge.derive import NotSigned, sign, verify
from homelab_tunnel.edge.upgrade_guard import read_only

PURPOSE = "seal"
HEADER = "homelab-tunnel database seal v1"
CHURN = frozenset({"endpoints", "disco_key", "host_info", "last_seen", "updated_at"})
STAMP = "%Y%m%dT%H%M%SZ"


def _value(value: object) -> object:
    return {"blob": value.hex()} if isinstance(value, bytes) else value


def digest(database: Path) -> str:
    """SHA-256 over every table's rows, churning columns left out (see above)."""
    connection = read_only(database)
    try:
        connection.execute("BEGIN")
        tables = [
            str(row[0])
            for row in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
                "ORDER BY name"
            )
        ]
        total = hashlib.sha256()
        for table in tables:
            quoted = table.replace('"', '""')
            columns = [
                str(row[1])
                for row in connection.execute(f'PRAGMA table_info("{quoted}")')
                if str(row[1]) not in CHURN
            ]
            total.update(json.dumps([table, columns]).encode() + b"\n")
            names = ", ".join('"' + c.replace('"', '""') + '"' for c in columns)
            order = ", ".join(str(n) for n in range(1, len(columns) + 1))
            # Names from the database's own schema, quoted as identifiers.
            query = f'SELECT {names} FROM "{quoted}" ORDER BY {order}'  # noqa: S608
            for row in connection.execute(query):
                total.update(json.dumps([_value(v) for v in row]).encode() + b"\n")
        connection.execute("ROLLBACK")
    except sqlite3.Error as exc:
        raise BackupError(f"cannot read {database} ({exc})") from None
    finally:
        connection.close()
    return total.hexdigest()


@dataclass(frozen=True)
class Seal:
    key: str
    digest: str
    time: datetime


def _name(backup: Backup, found: str, when: datetime) -> str:
    return f"{backup.prefix}/seals/{when.strftime(STAMP)}-{found}"


def _parse(key: str) -> Seal | None:
    stem = key.rsplit("/", 1)[-1]
    stamp, _, found = stem.partition("-")
    try:
        when = datetime.strptime(stamp, STAMP).replace(tzinfo=UTC)
    except ValueError:
        return None
    if len(found) != 64 or any(c not in "0123456789abcdef" for c in found):
        return None
    return Seal(key, found, when)


def listed(backup: Backup) -> list[Seal]:
    """The seals in the bucket by their names, newest first (not yet verified)."""
    found = [_parse(key) for _, _, key in s3.listing(backup.settings, f"{backup.prefix}/seals/")]
    return sorted((seal for seal in found if seal), key=lambda s: s.time, reverse=True)


def vouched(backup: Backup, found: str, seals: list[Seal], work: Path) -> Seal | None:
    """A seal with a valid MAC that names digest `found`, or None."""
    for seal in seals:
        if seal.digest != found:
            continue
        path = work / "seal"
        s3.get(backup.settings, seal.key, path)
        try:
            body = verify(backup.secret, PURPOSE, path.read_bytes()).decode()
        except NotSigned:
            continue
        if body == _body(seal.digest, seal.time):
            return seal
    return None


def _body(found: str, when: datetime) -> str:
    return f"{HEADER}\ndigest {found}\ntime {when.strftime('%Y-%m-%dT%H:%M:%SZ')}\n"


def seal(backup: Backup, now: datetime | None = None) -> str:
    """Seal the database if its digest changed (or its seal is gone); one line saying what."""
    database = backup.state / DATABASE
    record = backup.records / "seal"
    with locked(backup.root):
        if not database.exists():
            return "no database yet: nothing to seal"
        found = digest(database)
        remembered = record.read_text().split() if record.exists() else []
        if remembered[:1] == [found] and s3.exists(backup.settings, remembered[1]):
            return f"unchanged since {remembered[1].rsplit('/', 1)[-1][:16]}"
        when = (now or datetime.now(UTC)).replace(microsecond=0)
        key = _name(backup, found, when)
        with tempfile.TemporaryDirectory() as work:
            path = Path(work) / "seal"
            path.write_bytes(sign(backup.secret, PURPOSE, _body(found, when).encode()))
            s3.put(backup.settings, key, path)
        record.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        record.write_text(f"{found} {key}\n")
        pruned = _prune(backup, when)
    return f"sealed {found[:12]} as {key}" + (
        f"; {pruned} expired seal(s) deleted" if pruned else ""
    )


def _prune(backup: Backup, now: datetime) -> int:
    """Seals older than the retention (Litestream cannot restore them), the newest kept."""
    cutoff = now - timedelta(days=backup.retention_days)
    old = [s for s in listed(backup)[1:] if s.time < cutoff]
    for expired in old:
        s3.delete(backup.settings, expired.key)
    return len(old)


def main() -> int:
    try:
        backup = Backup.load(root_dir())
        print(f"seal: {seal(backup)}")
    except (BackupError, s3.S3Error, OSError) as exc:
        print(f"seal: FAILED: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
