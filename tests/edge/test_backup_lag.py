"""Backup lag: Litestream's level-0 files on the volume against the bucket's (a real S3 API)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from support.moto_s3 import S3Server

from homelab_tunnel.edge import s3
from homelab_tunnel.edge.backup_lag import BackupWatch, level0, watch_from_env

NOW = 1_800_000_000.0


def _ltx(txid: int) -> str:
    return f"{txid:016x}-{txid:016x}.ltx"


def _local(folder: Path, txid: int, age: float) -> None:
    """A level-0 file Litestream wrote `age` seconds before NOW."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / _ltx(txid)
    path.write_bytes(b"LTX")
    os.utime(path, (NOW - age, NOW - age))


@pytest.fixture
def bucket(s3_server: S3Server) -> tuple[dict[str, str], object]:
    env = s3_server.env(s3_server.new_bucket(), prefix="lab-edge")
    return env, s3_server.client()


def _upload(client: object, env: dict[str, str], txid: int) -> None:
    key = f"{env['BACKUP_PREFIX']}/db/0000/{_ltx(txid)}"  # as Litestream's S3 client names it
    client.put_object(Bucket=env["BACKUP_BUCKET"], Key=key, Body=b"LTX")  # type: ignore[attr-defined]


def test_everything_in_the_bucket_is_no_lag(tmp_path: Path, bucket: tuple) -> None:
    env, client = bucket
    database = tmp_path / "db.sqlite"
    for txid in (1, 2, 3):
        _local(level0(database), txid, age=30 - txid)
        _upload(client, env, txid)
    lag = watch_from_env(env, database).look(NOW)
    assert (lag.local_txid, lag.bucket_txid, lag.seconds) == (3, 3, 0.0)


def test_the_oldest_change_not_uploaded_is_the_lag(tmp_path: Path, bucket: tuple) -> None:
    env, client = bucket
    database = tmp_path / "db.sqlite"
    for txid, age in ((1, 40), (2, 12.5), (3, 4)):
        _local(level0(database), txid, age)
    _upload(client, env, 1)
    watch = watch_from_env(env, database)
    lag = watch.look(NOW)
    assert (lag.local_txid, lag.bucket_txid) == (3, 1)
    assert lag.seconds == pytest.approx(12.5)
    _upload(client, env, 2)
    _upload(client, env, 3)
    assert watch.look(NOW).seconds == 0.0


def test_retention_removing_old_files_changes_nothing(tmp_path: Path, bucket: tuple) -> None:
    """Litestream deletes compacted level-0 files in both places, never the newest."""
    env, client = bucket
    database = tmp_path / "db.sqlite"
    _local(level0(database), 9, age=200)
    _upload(client, env, 9)
    assert watch_from_env(env, database).look(NOW).seconds == 0.0


def test_nothing_local_yet_is_no_lag(tmp_path: Path, bucket: tuple) -> None:
    env, _ = bucket
    lag = watch_from_env(env, tmp_path / "db.sqlite").look(NOW)
    assert (lag.local_txid, lag.bucket_txid, lag.seconds) == (0, 0, 0.0)


def test_a_bucket_that_refuses_is_an_s3_error(tmp_path: Path, bucket: tuple) -> None:
    env, _ = bucket
    wrong = {**env, "BACKUP_SECRET_ACCESS_KEY": "not-the-secret"}
    with pytest.raises(s3.S3Error, match="403"):
        watch_from_env(wrong, tmp_path / "db.sqlite").look(NOW)


def test_other_files_in_the_folders_are_ignored(tmp_path: Path) -> None:
    folder = tmp_path / "ltx"
    _local(folder, 5, age=3)
    (folder / "5-5.ltx").write_text("not Litestream's name")
    (folder / "0000000000000007-0000000000000007.ltx.tmp").write_text("being written")
    keys = ["p/db/0000/readme.txt", f"p/db/0000/{_ltx(4)}"]
    watch = BackupWatch(lambda prefix: keys, "p", folder)
    lag = watch.look(NOW)
    assert (lag.local_txid, lag.bucket_txid, lag.seconds) == (5, 4, pytest.approx(3))
