"""Which Headscale last ran on the state volume, and whether the pinned one may follow it.

  python3 -m homelab_tunnel.edge.upgrade_guard [--dir DIR] show | check TARGET | stamp VERSION
  python3 -m homelab_tunnel.edge.upgrade_guard [--dir DIR] copy DEST

Headscale migrates its database as soon as it starts, and a migrated database
cannot go back. 0.29 records the release that last used it (table
database_versions) and refuses a skipped minor release or a downgrade, but
0.27 and 0.28 never wrote that table, so 0.29.2 migrates a 0.27 database
without a word. bootstrap.sh therefore asks `check` before it installs or
starts Headscale: exit 0 allowed, 1 refused, 2 cannot tell (refused too).

Where the last version comes from: the stamp bootstrap writes on the volume
once Headscale answered healthy (`stamp`), raised by what the database says
when that is newer: database_versions, else the newest migration id mapped to
its release (hscontrol/db/db.go at each tag). `copy` writes a consistent copy
of the database through SQLite's backup API, opening it read-only, for the
moment before a version change.
"""

from __future__ import annotations

import argparse
import os
import re
import sqlite3
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from homelab_tunnel.edge.versions import Version, parse_version, upgrade_problem

STATE_DIR = Path("/var/lib/headscale")
DATABASE = "db.sqlite"
STAMP = ".homelab-tunnel-headscale-version"
ALLOWED, REFUSED, UNKNOWN = 0, 1, 2
PSEUDO_VERSION = re.compile(r"[0-9]{14}-[0-9a-f]{12}$")

# The newest migration id each release adds: a database without
# database_versions was last opened by that release (or a later patch of it).
MIGRATIONS: tuple[tuple[str, Version], ...] = (
    ("202502070949", Version(0, 25, 1)),
    ("202505141324", Version(0, 26, 1)),
    ("202507021200", Version(0, 27, 0)),
    ("202511101554-drop-old-idx", Version(0, 27, 1)),
    ("202601121700-migrate-hostinfo-request-tags", Version(0, 28, 0)),
    ("202605221435-clear-zero-time-node-expiry", Version(0, 29, 0)),
    ("202606181200-recover-null-tags-node-user-id", Version(0, 29, 1)),
)


class CannotTell(Exception):
    """The volume holds state, but not which release wrote it."""


@dataclass(frozen=True)
class LastRun:
    version: Version
    source: str


def read_only(database: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{quote(str(database.resolve()))}?mode=ro", uri=True)


def from_database(database: Path) -> LastRun:
    """The release that last used `database`, by its own records."""
    connection = read_only(database)
    try:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
        stored = ""
        if "database_versions" in tables:
            row = connection.execute("SELECT version FROM database_versions WHERE id = 1")
            stored = str((row.fetchone() or [""])[0])
        ids = []
        if "migrations" in tables:
            rows = connection.execute("SELECT id FROM migrations")
            # Timestamped ids only: a database created fresh also holds SCHEMA_INIT.
            ids = [str(row[0]) for row in rows if str(row[0])[:12].isdigit()]
    except sqlite3.Error as exc:
        raise CannotTell(f"{database} is not a database this guard can read ({exc})") from None
    finally:
        connection.close()
    # Development builds ("dev", "(devel)", Go pseudo-versions) stamp nothing Headscale trusts.
    if not PSEUDO_VERSION.search(stored):
        try:
            return LastRun(parse_version(stored), f"database_versions says {stored}")
        except ValueError:
            pass
    if not ids:
        raise CannotTell(f"{database} has no Headscale migrations table")
    return LastRun(release_of(max(ids)), f"newest migration {max(ids)}")


def release_of(newest: str) -> Version:
    """The release whose migrations end at `newest` (ids start with a sortable timestamp)."""
    known = dict(MIGRATIONS)
    if newest in known:
        return known[newest]
    before = [version for mid, version in MIGRATIONS if mid < newest]
    after = [version for mid, version in MIGRATIONS if mid > newest]
    if before and after and before[-1].series == after[0].series:
        return before[-1]
    raise CannotTell(f"migration {newest} belongs to no release this guard knows")


def last_run(state_dir: Path) -> LastRun | None:
    """The stamp, or the database when it is newer; None on a fresh volume."""
    stamp, database = state_dir / STAMP, state_dir / DATABASE
    stamped = None
    if stamp.exists():
        text = stamp.read_text(encoding="utf-8").strip()
        try:
            stamped = LastRun(parse_version(text), f"stamp {stamp}")
        except ValueError:
            raise CannotTell(f"{stamp} holds {text[:40]!r}, not a version") from None
    if not database.exists():
        return stamped
    try:
        found = from_database(database)
    except CannotTell:
        if stamped is None:
            raise
        return stamped
    return found if stamped is None or found.version > stamped.version else stamped


def check(state_dir: Path, target: str) -> tuple[int, str]:
    wanted = parse_version(target)
    try:
        previous = last_run(state_dir)
    except CannotTell as exc:
        return UNKNOWN, (
            f"cannot tell which Headscale last ran on this volume: {exc}; refusing {wanted}. "
            f"If you know it, write that version to {state_dir / STAMP} and run again"
        )
    if previous is None:
        return ALLOWED, f"fresh state volume: Headscale {wanted} may start"
    problem = upgrade_problem(str(previous.version), str(wanted))
    if problem is None:
        return ALLOWED, f"Headscale {previous.version} ({previous.source}) -> {wanted}: allowed"
    return REFUSED, f"{problem}. {_fix(previous.version, wanted)} (last run: {previous.source})"


def _fix(old: Version, new: Version) -> str:
    if old.major == new.major and new.minor > old.minor:
        step = f"{old.major}.{old.minor + 1}"
        return (
            f"Fix: set headscale.version to the newest {step}.x release, deploy and let it "
            f"start once, then deploy {new}"
        )
    return (
        f"Fix: set headscale.version back to {old.series}.x, or restore a database from "
        f"before {old} (restore-state.sh --at TIME --force)"
    )


def stamp(state_dir: Path, version: str) -> bool:
    """Record that `version` ran healthy on this volume; False when it already says so."""
    text = f"{parse_version(version)}\n"
    path = state_dir / STAMP
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    _replace(path, text.encode())
    return True


def copy(state_dir: Path, destination: Path) -> None:
    """A consistent, self-contained copy of the database (read-only source, backup API)."""
    database = state_dir / DATABASE
    if not database.exists():
        raise CannotTell(f"no database at {database}")
    destination.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=destination.parent, prefix=f".{destination.name}.")
    os.close(handle)
    try:
        source = read_only(database)
        target = sqlite3.connect(name)
        try:
            source.backup(target)
            target.execute("PRAGMA journal_mode=DELETE")  # one file, no -wal beside it
            if target.execute("PRAGMA integrity_check").fetchone() != ("ok",):
                raise CannotTell(f"the copy of {database} fails SQLite's integrity check")
        finally:
            target.close()
            source.close()
        Path(name).replace(destination)
    finally:
        Path(name).unlink(missing_ok=True)


def _replace(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(data)
    temporary.replace(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m homelab_tunnel.edge.upgrade_guard")
    parser.add_argument("--dir", type=Path, default=STATE_DIR, help="Headscale's state directory")
    parser.add_argument("command", choices=["show", "check", "stamp", "copy"])
    parser.add_argument("argument", nargs="?", help="TARGET, VERSION or DEST")
    args = parser.parse_args(argv)
    if (args.command == "show") != (args.argument is None):
        parser.error(f"{args.command}: wrong number of arguments")
    try:
        if args.command == "check":
            code, line = check(args.dir, args.argument)
            print(line)
            return code
        if args.command == "stamp":
            if stamp(args.dir, args.argument):
                print(f"stamped Headscale {parse_version(args.argument)} on {args.dir}")
        elif args.command == "copy":
            copy(args.dir, Path(args.argument))
            print(f"copied {args.dir / DATABASE} to {args.argument}")
        else:
            found = last_run(args.dir)
            print(f"{found.version} ({found.source})" if found else "none (fresh volume)")
    except (ValueError, CannotTell, OSError, sqlite3.Error) as exc:
        print(f"upgrade guard: {exc}", file=sys.stderr)
        return UNKNOWN
    return ALLOWED


if __name__ == "__main__":
    sys.exit(main())
