"""Headscale's state back from the bucket: only what this edge sealed, all or nothing.

  restore-state.sh                     bootstrap: only on a blank volume
  restore-state.sh --list              the restore points in the bucket
  restore-state.sh --at TIME [--force] that point in time (RFC 3339), by hand
  restore-state.sh --status            how the last --at ended (or that it runs)

The database comes through Litestream and is installed only when a seal of
this edge names its digest (seal.py); when the newest one has none (written
after the last seal), the newest sealed points in time are tried before
giving up. Key files come through keybackup.fetch (a manifest signed by
this edge). Everything is fetched and checked in a root-only directory first.

`--at` runs as a transient systemd unit (systemd-run), so a dropped ssh
connection cannot stop it half-way; the caller waits and prints its outcome,
which `--status` prints again later. In the unit it takes the backups' lock,
stops Headscale, Litestream and the key and seal timers, marks the volume
(.homelab-tunnel-restoring: Headscale's and Litestream's units refuse to
start while it exists), moves the current state into a new
pre-restore/<time>-<random>/ folder, installs the restored files and asks the
upgrade guard. Any failure puts the previous state back and starts the
services again; if even that fails, the mark stays and says what to do.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from homelab_tunnel.edge import envfile, nofollow, s3, upgrade_guard
from homelab_tunnel.edge.backups import (
    DATABASE,
    Backup,
    BackupError,
    locked,
    root_dir,
)
from homelab_tunnel.edge.keybackup import fetch
from homelab_tunnel.edge.seal import digest, listed, vouched
from homelab_tunnel.findings import one_line

USAGE = "usage: restore-state.sh [--list | --at TIME [--force] | --status]"
LIB = "usr/local/lib/homelab-tunnel"
INITIALIZED = ".homelab-tunnel-initialized"
RESTORING = ".homelab-tunnel-restoring"
ASIDE = "pre-restore"
# What the current state is made of: moved aside whole, put back whole.
CURRENT = (
    DATABASE,
    f"{DATABASE}-wal",
    f"{DATABASE}-shm",
    f".{DATABASE}-litestream",
    upgrade_guard.STAMP,
)
UNITS = (
    "headscale",
    "homelab-tunnel-litestream",
    "homelab-tunnel-backup-keys.path",
    "homelab-tunnel-backup-keys.timer",
    "homelab-tunnel-seal.timer",
)
# Once the restored files are in place: back them up and seal them now.
AFTERWARDS = ("homelab-tunnel-backup-keys.service", "homelab-tunnel-seal.service")
RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})"
)
STAMP = "%Y-%m-%dT%H:%M:%SZ"
# Litestream stamps an LTX file when it uploads it, within about a second of
# the commit; a seal is read up to a second after its time. Tried: a little
# after each of the newest seals, then the seal's own second.
SEAL_ATTEMPTS = 3
AFTER_SEAL = timedelta(seconds=6)
KEEP_LOGS = 10


class Refused(Exception):
    """The restore stops here: one line that says why (and what was left where)."""


class Report:
    """Lines for the caller and, in a restore unit, for --status later."""

    def __init__(self, log: Path | None = None) -> None:
        self.log = log

    def say(self, line: str) -> None:
        text = f"restore-state: {line}"
        print(text, flush=True)
        if self.log is not None:
            with self.log.open("a", encoding="utf-8") as handle:
                handle.write(text + "\n")


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def systemctl(*args: str) -> None:
    subprocess.run(["systemctl", *args], check=True, stdout=subprocess.DEVNULL)


def litestream(backup: Backup, command: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Litestream with the config's literal keys; 0.5.18 refuses to start with AWS_CA_BUNDLE."""
    env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
    config = str(backup.conf / "litestream.yml")
    return subprocess.run(
        ["litestream", command, "-config", config, "-no-expand-env", *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )


# ---------------------------------------------------------------------------
# Fetching and checking
# ---------------------------------------------------------------------------


def _restore_to(backup: Backup, out: Path, when: str | None) -> str | None:
    """Litestream's restore into `out` (as of `when`); its digest, None if nothing is there."""
    out.unlink(missing_ok=True)
    done = litestream(
        backup, "restore", "-if-replica-exists", "-integrity-check", "quick", "-o", str(out),
        *(["-timestamp", when] if when else []), str(backup.state / DATABASE),
    )  # fmt: skip
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines() or ["failed"]
        raise Refused(f"litestream restore: {lines[-1]}")
    return digest(out) if out.exists() else None


def restore_database(backup: Backup, out: Path, when: str | None, work: Path) -> str | None:
    """The newest database (as of `when`) that this edge sealed, into `out`: the point it is
    ("newest" or a time), or None when the bucket holds none; Refused when none is sealed."""
    found = _restore_to(backup, out, when)
    if found is None:
        return None
    seals = listed(backup)
    if vouched(backup, found, seals, work):
        return when or "newest"
    limit = datetime.strptime(when, STAMP).replace(tzinfo=UTC) if when else now()
    times = sorted({s.time for s in seals if s.time <= limit}, reverse=True)[:SEAL_ATTEMPTS]
    for sealed in times:
        for point in (min(sealed + AFTER_SEAL, limit), sealed + timedelta(seconds=1)):
            text = min(point, limit).strftime(STAMP)
            try:
                found = _restore_to(backup, out, text)
            except Refused:
                continue
            if found is not None and vouched(backup, found, seals, work):
                return text
    out.unlink(missing_ok=True)
    raise Refused(
        f"the database in {backup.url('/db')} carries no seal of this edge "
        f"{'at or before ' + when if when else 'at its newest or its last sealed points'} "
        "(written by another edge secret, or planted); nothing installed"
    )


# ---------------------------------------------------------------------------
# At boot, on a blank volume
# ---------------------------------------------------------------------------


def record(backup: Backup, what: str) -> None:
    """For the health agent, which reports a restore for a day."""
    backup.records.mkdir(parents=True, exist_ok=True)
    (backup.records / "restored").write_text(f"{now().strftime(STAMP)} {what}\n")


def _unfinished(state: int, backup: Backup) -> str:
    mark = (nofollow.read(state, RESTORING) or b"").decode(errors="replace").strip()
    return (
        f"a restore did not finish on this volume ({mark}); Headscale stays stopped. The state "
        f"before it is in {backup.state / ASIDE}/: put it back (or keep what is there), then "
        f"delete {backup.state / RESTORING}"
    )


def _mark(state: int, name: str, text: str = "") -> None:
    nofollow.write(state, name, text.encode(), mode=0o644, owner=(os.getuid(), os.getgid()))


def bootstrap(backup: Backup, report: Report) -> None:
    backup.state.mkdir(parents=True, exist_ok=True)
    with locked(backup.root), nofollow.directory(backup.state) as state:
        if nofollow.exists(state, RESTORING):
            raise Refused(_unfinished(state, backup))
        if nofollow.exists(state, INITIALIZED):
            report.say("state volume already initialized; nothing restored")
            return
        if nofollow.exists(state, DATABASE):
            _mark(state, INITIALIZED)
            report.say("the state volume holds a database; nothing restored")
            return
        backup.records.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=backup.records) as temporary:
            work = Path(temporary)
            point = restore_database(backup, work / DATABASE, None, work)
            keys = fetch(backup, work)
            owner = nofollow.owner(state)
            what = []
            for name, data in keys.items():
                if not nofollow.exists(state, name):
                    nofollow.write(state, name, data, mode=0o600, owner=owner)
                    what.append(name)
            if point is not None:  # last: a failed attempt leaves the volume blank
                data = (work / DATABASE).read_bytes()
                nofollow.write(state, DATABASE, data, mode=0o600, owner=owner)
                what.insert(0, "database")
                if not nofollow.exists(state, "noise_private.key"):
                    what.append("(no noise key: clients must restart tailscaled once)")
        _mark(state, INITIALIZED)
    if not what:
        report.say(f"nothing to restore: {backup.url()} holds no backup yet (first deploy)")
        return
    record(backup, " ".join(what))
    report.say(f"restored {' '.join(what)} from {backup.url()}")


# ---------------------------------------------------------------------------
# A point in time, by hand
# ---------------------------------------------------------------------------


def _headscale_version(backup: Backup) -> str:
    try:
        return envfile.read(backup.conf / "edge.env")["HEADSCALE_VERSION"]
    except (envfile.EnvFileError, KeyError):
        raise Refused(f"{backup.conf / 'edge.env'} does not say HEADSCALE_VERSION") from None


def at(backup: Backup, when: str, force: bool, report: Report, unit: str) -> None:
    if not RFC3339.fullmatch(when):
        raise Refused(
            "--at takes an RFC 3339 time, e.g. 2026-11-29T21:00:00Z "
            "(restore-state.sh --list shows the range)"
        )
    when = datetime.fromisoformat(when.replace("Z", "+00:00")).astimezone(UTC).strftime(STAMP)
    version = _headscale_version(backup)
    with locked(backup.root, wait=60), nofollow.directory(backup.state) as state:
        if nofollow.exists(state, RESTORING):
            raise Refused(_unfinished(state, backup))
        if nofollow.exists(state, DATABASE) and not force:
            raise Refused(
                f"the volume holds a database; add --force to move it aside (to "
                f"{backup.state / ASIDE}/) and restore {when}"
            )
        backup.records.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=backup.records) as temporary:
            work = Path(temporary)
            point = restore_database(backup, work / DATABASE, when, work)
            if point is None:
                raise Refused(f"the bucket holds no database backup at or before {when}")
            if point != when:
                report.say(f"the newest sealed state at or before {when} is as of {point}")
            keys = fetch(backup, work)
            database = (work / DATABASE).read_bytes()
        systemctl("stop", *UNITS)
        aside = _swap(backup, state, database, keys, version, unit, report)
        _mark(state, INITIALIZED)
    record(backup, f"database as of {point} (by hand; the previous state is in {aside})")
    systemctl("start", *UNITS)
    systemctl("start", "--no-block", *AFTERWARDS)
    report.say(f"restored the database as of {point}; the previous state is in {aside}")


def _swap(
    backup: Backup,
    state: int,
    database: bytes,
    keys: dict[str, bytes],
    version: str,
    unit: str,
    report: Report,
) -> Path:
    """Previous state aside, restored state in, the guard asked: all of it, or none of it."""
    owner = nofollow.owner(state)
    _mark(state, RESTORING, f"{unit} since {now().strftime(STAMP)}\n")
    parent = nofollow.subdirectory(state, ASIDE)
    aside, name = nofollow.unique_subdirectory(parent, now().strftime("%Y%m%dT%H%M%SZ"))
    where = backup.state / ASIDE / name
    moved: list[str] = []
    installed: list[str] = []
    try:
        for entry in (*CURRENT, *keys):
            if nofollow.exists(state, entry):
                nofollow.move(state, entry, aside)
                moved.append(entry)
        for entry, data in [*keys.items(), (DATABASE, database)]:
            nofollow.write(state, entry, data, mode=0o600, owner=owner)
            installed.append(entry)
        code, line = upgrade_guard.check(backup.state, version)
        report.say(f"upgrade guard: {line}")
        if code != upgrade_guard.ALLOWED:
            raise Refused(f"Headscale {version} must not start on the restored database")
    except BaseException as exc:
        why = str(exc) or type(exc).__name__
        if isinstance(exc, OSError):
            why = f"{exc.strerror or exc} ({exc.filename or 'state volume'})"
        try:
            for entry in installed:
                os.unlink(entry, dir_fd=state)
            for entry in moved:
                nofollow.move(aside, entry, state)
            os.unlink(RESTORING, dir_fd=state)
        except OSError as undo:
            raise Refused(
                f"{why}; putting the previous state back failed too ({undo.strerror}): "
                f"Headscale stays stopped. The previous state is in {where}/; move it back to "
                f"{backup.state}/, then delete {backup.state / RESTORING}"
            ) from None
        finally:
            os.close(aside)
            os.close(parent)
        systemctl("start", *UNITS)
        raise Refused(f"{why}; the previous state is back and Headscale runs on it") from None
    os.close(aside)
    os.close(parent)
    os.unlink(RESTORING, dir_fd=state)
    return where


# ---------------------------------------------------------------------------
# Detached from the caller, and the outcome later
# ---------------------------------------------------------------------------


def logs(backup: Backup) -> Path:
    return backup.records / "restores"


def detach(backup: Backup, when: str, force: bool) -> int:
    """Run `--at` as a transient unit and follow it: its lines as they come, its outcome.

    Followed through its log and `systemctl is-active`, not `systemd-run --wait`, which
    needs D-Bus: the private socket systemd-run and systemctl use as root is enough.
    """
    unit = f"homelab-tunnel-restore-{now().strftime('%Y%m%dT%H%M%SZ')}-{os.urandom(2).hex()}"
    script = backup.root / LIB / "restore-state.sh"
    setenv = [f"--setenv=PYTHONPATH={backup.root / LIB}"]
    if os.environ.get("HOMELAB_TUNNEL_ROOT"):
        setenv.append(f"--setenv=HOMELAB_TUNNEL_ROOT={backup.root}")
    print(
        f"restore-state: running as {unit}; a dropped connection leaves it running "
        "(restore-state.sh --status tells how it ended)",
        flush=True,
    )
    started = subprocess.run(
        ["systemd-run", f"--unit={unit}", "--collect", "--quiet", *setenv, "--",
         str(script), "--at", when, *(["--force"] if force else []), "--in-unit", unit],
        stdout=subprocess.DEVNULL, check=False,
    )  # fmt: skip
    if started.returncode != 0:
        raise Refused(f"systemd-run could not start {unit}")
    log, shown, lines = logs(backup) / f"{unit}.log", 0, []
    while True:
        running = subprocess.run(["systemctl", "is-active", "--quiet", unit], check=False)
        lines = log.read_text(encoding="utf-8").splitlines() if log.exists() else []
        for line in lines[shown:]:
            print(line, flush=True)
        shown = len(lines)
        if running.returncode != 0:
            break
        time.sleep(0.5)
    last = lines[-1] if lines else ""
    if last.startswith("restore-state: restored "):
        return 0
    if not last.startswith("restore-state: FAILED: "):
        print(f"restore-state: FAILED: {unit} stopped before it finished (journalctl -u {unit})")
    return 1


def status(backup: Backup) -> int:
    found = sorted(logs(backup).glob("homelab-tunnel-restore-*.log"))
    if not found:
        print("restore-state: no restore by hand on this edge yet")
        return 0
    lines = found[-1].read_text(encoding="utf-8").splitlines()
    print("\n".join(lines))
    last = lines[-1] if lines else ""
    if last.startswith(("restore-state: restored ", "restore-state: FAILED: ")):
        return 1 if "FAILED" in last else 0
    unit = found[-1].stem
    running = subprocess.run(["systemctl", "is-active", "--quiet", unit], check=False)
    if running.returncode == 0:
        print(f"restore-state: {unit} is still running (journalctl -u {unit})")
        return 0
    print(f"restore-state: FAILED: {unit} stopped before it finished (journalctl -u {unit})")
    return 1


@contextlib.contextmanager
def unit_log(backup: Backup, unit: str) -> Iterator[Path]:
    directory = logs(backup)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    for old in sorted(directory.glob("homelab-tunnel-restore-*.log"))[:-KEEP_LOGS]:
        old.unlink()
    log = directory / f"{unit}.log"
    log.write_text("")
    yield log


def listing(backup: Backup) -> None:
    ltx = litestream(backup, "ltx", "-level", "all", str(backup.state / DATABASE))
    if ltx.returncode != 0:
        raise Refused(f"cannot list the database backup in {backup.url('/db')}")
    rows = [line.split() for line in ltx.stdout.splitlines()[1:] if line.split()]
    points = sorted((row[4], row[0]) for row in rows if len(row) >= 5)
    snapshots = [time for time, level in points if level == "9"]
    if points:
        print(f"database: from {(snapshots or [points[0][0]])[0]} to {points[-1][0]}")
    else:
        print("database: no backup")
    seals = listed(backup)
    newest = f", newest {seals[0].time.strftime(STAMP)}" if seals else ""
    print(f"sealed: {len(seals)} point(s){newest}")
    for kind, label in (("keys", "keys"), ("pre-upgrade", "pre-upgrade copy")):
        for modified, size, key in s3.listing(backup.settings, f"{backup.prefix}/{kind}/"):
            # Object names are anyone's text who could write to the bucket.
            print(f"{label}: {modified} {size} {one_line(key)}")


FAILURES = (
    Refused,
    BackupError,
    nofollow.Unsafe,
    s3.S3Error,
    OSError,
    subprocess.CalledProcessError,
)


def run(argv: Sequence[str]) -> int:
    args = list(argv)
    root = root_dir()
    try:
        backup = Backup.load(root)
        if not args:
            bootstrap(backup, Report())
        elif args == ["--list"]:
            listing(backup)
        elif args == ["--status"]:
            return status(backup)
        elif args[:1] == ["--at"] and len(args) in (2, 3, 4, 5):
            rest = args[2:]
            force = "--force" in rest
            if "--in-unit" not in rest:
                if rest not in ([], ["--force"]):
                    raise Refused(USAGE)
                return detach(backup, args[1], force)
            unit = rest[rest.index("--in-unit") + 1] if rest[-1] != "--in-unit" else "by hand"
            # `systemctl stop` half-way: unwind through the rollback, not die in the middle.
            signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
            with unit_log(backup, unit) as log:
                report = Report(log)
                try:
                    at(backup, args[1], force, report, unit)
                except FAILURES as exc:
                    report.say(f"FAILED: {exc}")
                    return 1
        else:
            raise Refused(USAGE)
    except FAILURES as exc:
        print(f"restore-state: FAILED: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
