"""The upgrade guard on databases made by the real Headscale 0.27.1, 0.28.0 and 0.29.2.

Each release's database comes from its own binary (`headscale serve` until
healthy, on 127.0.0.1; tools/binaries.toml builds them), so the guard reads
exactly what a volume holds. Databases shaped by hand cover what no release
writes: development stamps, unknown migrations, files that are not databases.
"""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from support.binaries import require
from support.config import ROOT
from support.headscale_db import run_once

from homelab_tunnel.edge import upgrade_guard
from homelab_tunnel.edge.upgrade_guard import DATABASE, STAMP

RELEASES = {"0.27.1": "headscale-0_27", "0.28.0": "headscale-0_28", "0.29.2": "headscale"}


class Releases:
    """Each release's state directory, made once per session on first use."""

    def __init__(self, factory: pytest.TempPathFactory) -> None:
        self.factory = factory
        self.made: dict[str, Path] = {}

    def state(self, release: str, tmp_path: Path) -> Path:
        """A copy of the state directory `release` leaves behind, for one test to change."""
        if release not in self.made:
            directory = self.factory.mktemp(f"made-by-{release}")
            self.made[release] = run_once(require(RELEASES[release]), directory).parent
        copy = tmp_path / f"state-{release}"
        copy.mkdir()
        for file in self.made[release].glob(f"{DATABASE}*"):
            shutil.copy2(file, copy / file.name)
        return copy


@pytest.fixture(scope="session")
def releases(tmp_path_factory: pytest.TempPathFactory) -> Releases:
    return Releases(tmp_path_factory)


def guard(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "homelab_tunnel.edge.upgrade_guard", "--dir", str(state), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def shaped(tmp_path: Path, migrations: list[str], version: str | None = None) -> Path:
    """A database with only the tables the guard reads."""
    tmp_path.mkdir(exist_ok=True)
    with sqlite3.connect(tmp_path / DATABASE) as connection:
        connection.execute("CREATE TABLE migrations (id text PRIMARY KEY)")
        connection.executemany("INSERT INTO migrations VALUES (?)", [(m,) for m in migrations])
        if version is not None:
            connection.execute("CREATE TABLE database_versions (id integer, version text)")
            connection.execute("INSERT INTO database_versions VALUES (1, ?)", (version,))
    connection.close()
    return tmp_path


# ---------------------------------------------------------------------------
# Real releases
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("release", "shown"),
    [
        ("0.27.1", "0.27.1 (newest migration 202511101554-drop-old-idx)"),
        ("0.28.0", "0.28.0 (newest migration 202601121700-migrate-hostinfo-request-tags)"),
        ("0.29.2", "0.29.2 (database_versions says v0.29.2)"),
    ],
)
def test_each_release_is_recognised_by_its_own_database(
    release: str, shown: str, releases: Releases, tmp_path: Path
) -> None:
    done = guard(releases.state(release, tmp_path), "show")
    assert (done.returncode, done.stdout) == (0, shown + "\n")


@pytest.mark.parametrize(
    ("release", "target", "code"),
    [
        ("0.27.1", "0.27.1", 0),
        ("0.27.1", "0.28.0", 0),
        ("0.27.1", "0.29.2", 1),
        ("0.28.0", "0.29.2", 0),
        ("0.28.0", "0.27.1", 1),
        ("0.28.0", "0.30.0", 1),
        ("0.29.2", "0.29.0", 0),
        ("0.29.2", "0.30.1", 0),
        ("0.29.2", "0.28.0", 1),
        ("0.29.2", "1.0.0", 1),
    ],
)
def test_one_minor_release_at_a_time(
    release: str, target: str, code: int, releases: Releases, tmp_path: Path
) -> None:
    assert guard(releases.state(release, tmp_path), "check", target).returncode == code


def test_a_skipped_minor_is_refused_naming_both_versions_and_the_fix(
    releases: Releases, tmp_path: Path
) -> None:
    done = guard(releases.state("0.27.1", tmp_path), "check", "0.29.2")
    assert done.returncode == 1
    assert done.stdout.startswith("Headscale 0.27.1 -> 0.29.2 skips 1 minor release(s)")
    assert "set headscale.version to the newest 0.28.x release" in done.stdout
    assert "then deploy 0.29.2" in done.stdout


def test_the_guard_never_changes_the_database(releases: Releases, tmp_path: Path) -> None:
    state = releases.state("0.27.1", tmp_path)
    before = digest(state / DATABASE)
    for args in (("show",), ("check", "0.29.2"), ("copy", str(tmp_path / "copy.sqlite"))):
        guard(state, *args)
    assert digest(state / DATABASE) == before


def test_headscale_itself_migrates_a_skipped_minor_without_a_word(
    releases: Releases, tmp_path: Path
) -> None:
    """Why the guard exists: 0.29.2 opens a 0.27.1 database, migrates and stamps it."""
    state = releases.state("0.27.1", tmp_path)
    run_once(require("headscale"), state)
    assert guard(state, "show").stdout == "0.29.2 (database_versions says v0.29.2)\n"


def test_the_pre_upgrade_copy_is_a_database_headscale_starts_on(
    releases: Releases, tmp_path: Path
) -> None:
    state = releases.state("0.28.0", tmp_path)
    copy = tmp_path / "pre-upgrade" / "0.28.0-to-0.29.2.sqlite"
    done = guard(state, "copy", str(copy))
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in copy.parent.iterdir()) == [copy.name]  # no -wal, no temp
    with sqlite3.connect(f"file:{copy}?mode=ro", uri=True) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("delete",)
        copied = list(connection.iterdump())
    connection.close()
    with sqlite3.connect(f"file:{state / DATABASE}?mode=ro", uri=True) as connection:
        assert list(connection.iterdump()) == copied
    connection.close()
    restored = tmp_path / "restored"
    restored.mkdir()
    shutil.copy(copy, restored / DATABASE)
    run_once(require("headscale-0_28"), restored)


# ---------------------------------------------------------------------------
# The stamp, and what no release writes
# ---------------------------------------------------------------------------


def test_a_fresh_volume_may_start_any_release(tmp_path: Path) -> None:
    done = guard(tmp_path, "check", "0.29.2")
    assert (done.returncode, done.stdout) == (0, "fresh state volume: Headscale 0.29.2 may start\n")
    assert guard(tmp_path, "show").stdout == "none (fresh volume)\n"


def test_the_stamp_is_written_once(tmp_path: Path) -> None:
    first = guard(tmp_path, "stamp", "v0.29.2")
    assert (first.returncode, first.stdout) == (0, f"stamped Headscale 0.29.2 on {tmp_path}\n")
    assert (tmp_path / STAMP).read_text() == "0.29.2\n"
    assert guard(tmp_path, "stamp", "0.29.2").stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == [STAMP]


def test_the_stamp_counts_without_a_database(tmp_path: Path) -> None:
    (tmp_path / STAMP).write_text("0.27.1\n")
    assert guard(tmp_path, "check", "0.29.2").returncode == 1
    assert guard(tmp_path, "check", "0.28.2").returncode == 0


def test_a_newer_database_outranks_an_older_stamp(releases: Releases, tmp_path: Path) -> None:
    """Headscale 0.29 migrated the database but never answered healthy: no new stamp."""
    state = releases.state("0.29.2", tmp_path)
    (state / STAMP).write_text("0.28.0\n")
    assert guard(state, "check", "0.28.0").returncode == 1
    assert guard(state, "show").stdout.startswith("0.29.2 ")


def test_an_older_database_does_not_outrank_the_stamp(releases: Releases, tmp_path: Path) -> None:
    state = releases.state("0.27.1", tmp_path)
    (state / STAMP).write_text("0.28.3\n")
    assert guard(state, "check", "0.29.2").returncode == 0
    assert guard(state, "show").stdout == f"0.28.3 (stamp {state / STAMP})\n"


@pytest.mark.parametrize("text", ["", "latest\n", "0.29\x00"])
def test_a_stamp_that_is_not_a_version_is_cannot_tell(tmp_path: Path, text: str) -> None:
    (tmp_path / STAMP).write_text(text)
    done = guard(tmp_path, "check", "0.29.2")
    assert done.returncode == 2
    assert done.stdout.startswith("cannot tell which Headscale last ran on this volume")


def test_a_file_that_is_not_a_database_is_cannot_tell_unless_stamped(tmp_path: Path) -> None:
    (tmp_path / DATABASE).write_bytes(b"not sqlite at all" * 100)
    done = guard(tmp_path, "check", "0.29.2")
    assert done.returncode == 2
    assert f"write that version to {tmp_path / STAMP}" in done.stdout
    (tmp_path / STAMP).write_text("0.29.1\n")
    assert guard(tmp_path, "check", "0.29.2").returncode == 0


def test_a_migration_newer_than_the_guard_knows_is_cannot_tell(tmp_path: Path) -> None:
    shaped(tmp_path, ["202511101554-drop-old-idx", "202712010000-from-the-future"])
    done = guard(tmp_path, "check", "0.29.2")
    assert done.returncode == 2
    assert "migration 202712010000-from-the-future belongs to no release" in done.stdout


def test_a_migration_inside_one_release_is_that_release(tmp_path: Path) -> None:
    """Between 0.27.0's newest and 0.27.1's newest: a 0.27 database either way."""
    shaped(tmp_path, ["202507021200", "202510311551", "SCHEMA_INIT"])
    assert guard(tmp_path, "show").stdout == "0.27.0 (newest migration 202510311551)\n"


@pytest.mark.parametrize("stamp", ["dev", "(devel)", "v0.0.0-20260101120000-0123456789ab", ""])
def test_a_development_build_stamp_falls_back_to_the_migrations(tmp_path: Path, stamp: str) -> None:
    shaped(tmp_path, ["202601121700-migrate-hostinfo-request-tags"], version=stamp)
    assert guard(tmp_path, "show").stdout.startswith("0.28.0 (newest migration ")


def test_copy_without_a_database_fails(tmp_path: Path) -> None:
    done = guard(tmp_path, "copy", str(tmp_path / "x.sqlite"))
    assert (done.returncode, done.stderr) == (
        2,
        f"upgrade guard: no database at {tmp_path}/db.sqlite\n",
    )


@pytest.mark.parametrize(
    "args", [["check"], ["stamp"], ["copy"], ["show", "0.29.2"], ["check", "latest"]]
)
def test_bad_arguments_exit_2(tmp_path: Path, args: list[str]) -> None:
    assert guard(tmp_path, *args).returncode == 2


def test_the_migration_map_is_in_order() -> None:
    ids = [mid for mid, _ in upgrade_guard.MIGRATIONS]
    versions = [version for _, version in upgrade_guard.MIGRATIONS]
    assert ids == sorted(ids)
    assert versions == sorted(versions)
