"""backup-keys.sh and restore-state.sh as shipped, with the real age, the real Litestream
0.5.18 (tools/binaries.toml) and moto's S3 on 127.0.0.1; only systemctl and chown are fakes.

A scratch root stands for the edge (HOMELAB_TUNNEL_ROOT): the bundle's files,
backup.env pointed at the loopback bucket, Litestream's config at the root's
database. One edge is backed up once per module (database streamed by a
real `litestream replicate`, keys by backup-keys.sh); each test restores
from it into a root of its own.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from support.binaries import require
from support.config import config_with
from support.headscale_db import shaped_database
from support.moto_s3 import S3Server

from homelab_tunnel.crawlers import ai_crawlers
from homelab_tunnel.edge import s3
from homelab_tunnel.edge.agekey import identity_from_secret
from homelab_tunnel.payload import fixed_files
from homelab_tunnel.render.backup import render_litestream_config
from homelab_tunnel.render.user_data import rendered_files

LIB = "usr/local/lib/homelab-tunnel"
HS = "var/lib/headscale"
FAKES = {
    "systemctl": '#!/bin/sh\necho "systemctl $*" >>"$FAKE_LOG"\n',
    "chown": '#!/bin/sh\necho "chown $*" >>"$FAKE_LOG"\n',
}
needs_age = pytest.mark.skipif(
    shutil.which("age") is None or shutil.which("age-keygen") is None,
    reason="age is not installed (Debian package age; `make test` installs it)",
)
pytestmark = needs_age


@dataclass
class Edge:
    root: Path
    env: dict[str, str]
    backup: dict[str, str]

    @property
    def state(self) -> Path:
        return self.root / HS

    def run(
        self, script: str, *args: str, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.root / LIB / script), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def calls(self) -> list[str]:
        log = Path(self.env["FAKE_LOG"])
        return log.read_text().splitlines() if log.exists() else []

    def settings(self) -> s3.Settings:
        return s3.Settings.from_env(self.backup)


def make_edge(tmp_path: Path, s3_server: S3Server, bucket: str, owner: str) -> Edge:
    """A root as cloud-init leaves it, backups pointed at `bucket` on the loopback S3."""
    root = tmp_path / "root"
    config = config_with()
    for file in [*rendered_files(config, ai_crawlers()), *fixed_files()]:
        target = root / file.path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(file.content)
        target.chmod(file.mode)
    backup = {**s3_server.env(bucket), "BACKUP_RECIPIENTS": owner}
    conf = root / "etc/homelab-tunnel"
    (conf / "backup.env").write_text("".join(f"{k}={v}\n" for k, v in backup.items()))
    litestream = (
        render_litestream_config(config)
        .replace("/var/lib/headscale/db.sqlite", str(root / HS / "db.sqlite"))
        .replace("https://ams3.digitaloceanspaces.com", s3_server.endpoint)
        .replace(f"bucket: {config.backup_bucket}", f"bucket: {bucket}")
        .replace("      region: ams3\n", "      region: ams3\n      force-path-style: true\n")
    )
    (conf / "litestream.yml").write_text(litestream)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").symlink_to(sys.executable)
    (bin_dir / "litestream").symlink_to(require("litestream"))
    for name, script in FAKES.items():
        (bin_dir / name).write_text(script)
        (bin_dir / name).chmod(0o755)
    env = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "TMPDIR": str(tmp_path),
        "HOMELAB_TUNNEL_ROOT": str(root),
        "FAKE_LOG": str(tmp_path / "calls.log"),
        "AWS_CA_BUNDLE": "/nonexistent/ca.pem",  # as in this sandbox: the scripts unset it
    }
    (root / HS).mkdir(parents=True, exist_ok=True)
    return Edge(root, env, backup)


def rows(database: Path) -> list[str]:
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as connection:
        names = [str(row[0]) for row in connection.execute("SELECT name FROM users ORDER BY id")]
    connection.close()
    return names


def add_user(database: Path, name: str) -> None:
    with sqlite3.connect(database) as connection:
        connection.execute("INSERT INTO users (name) VALUES (?)", (name,))
    connection.close()


@pytest.fixture(scope="module")
def owner(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The owner's age identity (kept off the edge) and its public recipient."""
    identity = tmp_path_factory.mktemp("owner") / "owner.key"
    subprocess.run(["age-keygen", "-o", str(identity)], check=True, capture_output=True)
    recipient = subprocess.run(
        ["age-keygen", "-y", str(identity)], check=True, capture_output=True, text=True
    ).stdout.strip()
    return identity, recipient


@dataclass(frozen=True)
class BackedUp:
    bucket: str
    between: str  # a time after the first user was streamed and before the second
    keys: dict[str, bytes]


@pytest.fixture(scope="module")
def backed_up(
    tmp_path_factory: pytest.TempPathFactory, s3_server: S3Server, owner: tuple[Path, str]
) -> Iterator[BackedUp]:
    """An edge that ran with backups on: two users a few seconds apart, both key files."""
    bucket = s3_server.new_bucket()
    edge = make_edge(tmp_path_factory.mktemp("primary"), s3_server, bucket, owner[1])
    shaped_database(edge.state / "db.sqlite", "0.29.2")
    _replicate(edge, s3_server, "before")
    between = _next_whole_second()
    _replicate(edge, s3_server, "after")
    keys = {"noise_private.key": os.urandom(72), "derp_server_private.key": os.urandom(64)}
    for name, data in keys.items():
        (edge.state / name).write_bytes(data)
    done = edge.run("backup-keys.sh")
    assert done.returncode == 0, done.stderr
    yield BackedUp(bucket, between, keys)


@pytest.fixture
def blank(
    tmp_path: Path, s3_server: S3Server, backed_up: BackedUp, owner: tuple[Path, str]
) -> Edge:
    """A new droplet on a blank volume, pointed at the backed-up edge's bucket."""
    return make_edge(tmp_path, s3_server, backed_up.bucket, owner[1])


# ---------------------------------------------------------------------------
# backup-keys.sh
# ---------------------------------------------------------------------------


@pytest.fixture
def keyed(tmp_path: Path, s3_server: S3Server, owner: tuple[Path, str]) -> Edge:
    """An edge with both key files, backing up to a bucket of its own."""
    edge = make_edge(tmp_path, s3_server, s3_server.new_bucket(), owner[1])
    (edge.state / "noise_private.key").write_bytes(b"noise " + os.urandom(32))
    (edge.state / "derp_server_private.key").write_bytes(b"derp " + os.urandom(32))
    return edge


def _decrypt(edge: Edge, name: str, identity: Path, tmp_path: Path) -> bytes:
    encrypted = tmp_path / f"{name}.age"
    s3.get(edge.settings(), f"homelab-edge/keys/{name}.age", encrypted)
    return subprocess.run(
        ["age", "-d", "-i", str(identity), str(encrypted)], capture_output=True, check=True
    ).stdout


def test_keys_are_encrypted_to_the_owner_and_to_the_edge(
    keyed: Edge, owner: tuple[Path, str], tmp_path: Path
) -> None:
    done = keyed.run("backup-keys.sh")
    assert done.returncode == 0, done.stderr
    bucket = keyed.backup["BACKUP_BUCKET"]
    assert done.stdout == (
        f"backup-keys: 2 key file(s) uploaded to s3://{bucket}/homelab-edge/keys/\n"
    )
    edge_identity = tmp_path / "edge.key"
    edge_identity.write_text(identity_from_secret(keyed.backup["BACKUP_SECRET_ACCESS_KEY"]) + "\n")
    stranger = tmp_path / "stranger.key"
    subprocess.run(["age-keygen", "-o", str(stranger)], check=True, capture_output=True)
    for name in ("noise_private.key", "derp_server_private.key"):
        plain = (keyed.state / name).read_bytes()
        assert _decrypt(keyed, name, owner[0], tmp_path) == plain
        assert _decrypt(keyed, name, edge_identity, tmp_path) == plain
        with pytest.raises(subprocess.CalledProcessError):
            _decrypt(keyed, name, stranger, tmp_path)
    listed = [key for _, _, key in s3.listing(keyed.settings(), "homelab-edge/keys/")]
    assert sorted(listed) == [
        "homelab-edge/keys/derp_server_private.key.age",
        "homelab-edge/keys/manifest.sha256",
        "homelab-edge/keys/noise_private.key.age",
    ]
    assert keyed.backup["BACKUP_SECRET_ACCESS_KEY"] not in done.stdout + done.stderr


def test_unchanged_keys_are_not_uploaded_again(keyed: Edge) -> None:
    assert keyed.run("backup-keys.sh").returncode == 0
    again = keyed.run("backup-keys.sh")
    assert again.stdout.startswith("backup-keys: 0 key file(s) uploaded")


def test_a_changed_key_is_uploaded_with_a_new_manifest(keyed: Edge, tmp_path: Path) -> None:
    assert keyed.run("backup-keys.sh").returncode == 0
    (keyed.state / "derp_server_private.key").write_bytes(b"a new derp key")
    done = keyed.run("backup-keys.sh")
    assert done.stdout.startswith("backup-keys: 1 key file(s) uploaded")
    manifest = tmp_path / "manifest"
    s3.get(keyed.settings(), "homelab-edge/keys/manifest.sha256", manifest)
    digest = subprocess.run(
        ["sha256sum"], input=b"a new derp key", capture_output=True, check=True
    ).stdout.split()[0]
    assert f"{digest.decode()}  derp_server_private.key\n" in manifest.read_text()


def test_a_key_missing_from_the_bucket_is_uploaded_again(keyed: Edge) -> None:
    assert keyed.run("backup-keys.sh").returncode == 0
    s3.delete(keyed.settings(), "homelab-edge/keys/noise_private.key.age")
    assert keyed.run("backup-keys.sh").stdout.startswith("backup-keys: 1 key file(s) uploaded")


def test_new_recipients_re_encrypt_every_key(keyed: Edge, tmp_path: Path) -> None:
    """As after rotating the Spaces key (the edge's own recipient) or the owner's key."""
    assert keyed.run("backup-keys.sh").returncode == 0
    second = tmp_path / "second.key"
    subprocess.run(["age-keygen", "-o", str(second)], check=True, capture_output=True)
    recipient = subprocess.run(
        ["age-keygen", "-y", str(second)], capture_output=True, text=True, check=True
    ).stdout.strip()
    env_file = keyed.root / "etc/homelab-tunnel/backup.env"
    text = env_file.read_text()
    env_file.write_text(text.replace("BACKUP_RECIPIENTS=", f"BACKUP_RECIPIENTS={recipient} "))
    assert keyed.run("backup-keys.sh").stdout.startswith("backup-keys: 2 key file(s) uploaded")
    noise = (keyed.state / "noise_private.key").read_bytes()
    assert _decrypt(keyed, "noise_private.key", second, tmp_path) == noise


# ---------------------------------------------------------------------------
# restore-state.sh: a blank volume, at boot
# ---------------------------------------------------------------------------


def test_a_blank_volume_gets_the_latest_database_and_both_keys(
    blank: Edge, backed_up: BackedUp
) -> None:
    done = blank.run("restore-state.sh")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout == (
        "restore-state: restored database noise_private.key derp_server_private.key "
        f"from s3://{backed_up.bucket}/homelab-edge\n"
    )
    assert rows(blank.state / "db.sqlite") == ["homelab", "before", "after"]
    for name, data in backed_up.keys.items():
        assert (blank.state / name).read_bytes() == data
        assert (blank.state / name).stat().st_mode & 0o777 == 0o600
    assert (blank.state / ".homelab-tunnel-initialized").exists()
    assert sorted(p.name for p in blank.state.iterdir() if p.name.startswith(".restor")) == []
    record = (blank.root / "var/lib/homelab-tunnel/restored").read_text()
    assert record.endswith(" database noise_private.key derp_server_private.key\n")
    assert blank.calls() == []  # nothing started or stopped: bootstrap does that


def test_the_restored_database_passes_the_upgrade_guard(blank: Edge) -> None:
    assert blank.run("restore-state.sh").returncode == 0
    module = "homelab_tunnel.edge.upgrade_guard"
    guard = subprocess.run(
        [sys.executable, "-m", module, "--dir", str(blank.state), "check", "0.29.2"],
        env={**blank.env, "PYTHONPATH": str(blank.root / LIB)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert guard.returncode == 0, guard.stdout


def test_an_initialized_volume_is_left_alone(blank: Edge) -> None:
    assert blank.run("restore-state.sh").returncode == 0
    again = blank.run("restore-state.sh")
    assert again.stdout == "restore-state: state volume already initialized; nothing restored\n"


def test_a_volume_with_a_database_is_never_overwritten(blank: Edge) -> None:
    own = shaped_database(blank.state / "db.sqlite", "0.29.2")
    before = own.read_bytes()
    done = blank.run("restore-state.sh")
    assert done.stdout == "restore-state: the state volume holds a database; nothing restored\n"
    assert own.read_bytes() == before
    assert not (blank.state / "noise_private.key").exists()
    assert (blank.state / ".homelab-tunnel-initialized").exists()


def test_keys_that_do_not_match_the_manifest_restore_nothing(
    blank: Edge, tmp_path: Path, s3_server: S3Server, owner: tuple[Path, str]
) -> None:
    """The manifest is checked before anything lands on the volume: all or nothing."""
    edge = make_edge(tmp_path / "other", s3_server, s3_server.new_bucket(), owner[1])
    (edge.state / "noise_private.key").write_bytes(b"noise")
    assert edge.run("backup-keys.sh").returncode == 0
    wrong = tmp_path / "manifest"
    wrong.write_text(f"{'0' * 64}  noise_private.key\n")
    s3.put(edge.settings(), "homelab-edge/keys/manifest.sha256", wrong)
    done = edge.run("restore-state.sh")
    assert done.returncode == 1
    assert done.stderr == (
        "restore-state: FAILED: the key files do not match homelab-edge/keys/manifest.sha256\n"
    )
    assert sorted(p.name for p in edge.state.iterdir()) == ["noise_private.key"]
    (edge.state / "noise_private.key").unlink()
    done = edge.run("restore-state.sh")
    assert done.returncode == 1
    assert list(edge.state.iterdir()) == []


def test_keys_not_encrypted_to_this_edge_are_refused(
    tmp_path: Path, s3_server: S3Server, owner: tuple[Path, str]
) -> None:
    """As after a Spaces key rotation the edge never backed up under: another identity."""
    edge = make_edge(tmp_path, s3_server, s3_server.new_bucket(), owner[1])
    (edge.state / "noise_private.key").write_bytes(b"noise")
    assert edge.run("backup-keys.sh").returncode == 0
    stranger = tmp_path / "stranger.key"
    subprocess.run(["age-keygen", "-o", str(stranger)], check=True, capture_output=True)
    recipient = subprocess.run(
        ["age-keygen", "-y", str(stranger)], capture_output=True, text=True, check=True
    ).stdout.strip()
    encrypted = tmp_path / "noise.age"
    subprocess.run(["age", "-r", recipient, "-o", str(encrypted)], input=b"noise", check=True)
    s3.put(edge.settings(), "homelab-edge/keys/noise_private.key.age", encrypted)
    (edge.state / "noise_private.key").unlink()
    done = edge.run("restore-state.sh")
    assert done.returncode == 1
    assert "FAILED: noise_private.key.age is not encrypted to this edge's key" in done.stderr
    assert list(edge.state.iterdir()) == []


# ---------------------------------------------------------------------------
# restore-state.sh --list and --at, by hand
# ---------------------------------------------------------------------------


def test_list_shows_the_database_range_and_the_key_objects(
    blank: Edge, backed_up: BackedUp
) -> None:
    done = blank.run("restore-state.sh", "--list")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("database: from 20")
    first, last = lines[0].removeprefix("database: from ").split(" to ")
    assert first <= backed_up.between <= last
    keys = [line.split()[-1] for line in lines if line.startswith("keys: ")]
    assert keys == [
        "homelab-edge/keys/derp_server_private.key.age",
        "homelab-edge/keys/manifest.sha256",
        "homelab-edge/keys/noise_private.key.age",
    ]
    assert all(line.split()[1].startswith("20") for line in lines if line.startswith("keys: "))


def test_at_refuses_a_volume_with_a_database_without_force(blank: Edge) -> None:
    shaped_database(blank.state / "db.sqlite", "0.29.2")
    done = blank.run("restore-state.sh", "--at", "2026-11-29T21:00:00Z")
    assert done.returncode == 1
    assert "the volume holds a database; add --force" in done.stderr
    assert blank.calls() == []


@pytest.mark.parametrize("when", ["yesterday", "2026-11-29 21:00", "2026-11-29T21:00:00"])
def test_at_takes_only_rfc_3339(blank: Edge, when: str) -> None:
    done = blank.run("restore-state.sh", "--at", when, "--force")
    assert done.returncode == 1
    assert "--at takes an RFC 3339 time" in done.stderr


def test_at_force_restores_that_moment_and_keeps_what_was_there(
    blank: Edge, backed_up: BackedUp
) -> None:
    current = shaped_database(blank.state / "db.sqlite", "0.29.2")
    add_user(current, "written-since")
    (blank.state / "noise_private.key").write_bytes(b"the current noise key")
    (blank.state / ".homelab-tunnel-headscale-version").write_text("0.29.2\n")
    done = blank.run("restore-state.sh", "--at", backed_up.between, "--force")
    assert done.returncode == 0, done.stdout + done.stderr
    assert rows(blank.state / "db.sqlite") == ["homelab", "before"]
    [aside] = list((blank.state / "pre-restore").iterdir())
    assert rows(aside / "db.sqlite") == ["homelab", "written-since"]
    assert (aside / "noise_private.key").read_bytes() == b"the current noise key"
    assert (aside / ".homelab-tunnel-headscale-version").exists()
    assert (blank.state / "noise_private.key").read_bytes() == backed_up.keys["noise_private.key"]
    assert blank.calls() == [
        "systemctl stop homelab-tunnel-litestream homelab-tunnel-backup-keys.path headscale",
        f"chown -R headscale:headscale {blank.state}",
        "systemctl start headscale homelab-tunnel-litestream homelab-tunnel-backup-keys.path",
    ]
    assert done.stdout.splitlines()[-1] == (
        f"restore-state: restored the database as of {backed_up.between}; "
        f"the previous state is in {aside}"
    )
    record = (blank.root / "var/lib/homelab-tunnel/restored").read_text()
    assert f" database as of {backed_up.between} (by hand;" in record


def test_at_a_time_before_any_backup_changes_nothing(blank: Edge) -> None:
    current = shaped_database(blank.state / "db.sqlite", "0.29.2")
    before = current.read_bytes()
    done = blank.run("restore-state.sh", "--at", "2001-01-01T00:00:00Z", "--force")
    assert done.returncode == 1
    assert "no database backup at or before 2001-01-01T00:00:00Z" in done.stderr
    assert current.read_bytes() == before
    assert blank.calls() == []


def _replicate(edge: Edge, s3_server: S3Server, *users: str) -> None:
    """Run the real `litestream replicate`; add each of `users` once the last change shipped."""
    env = {**edge.env, **edge.backup}
    env.pop("AWS_CA_BUNDLE")
    config = edge.root / "etc/homelab-tunnel/litestream.yml"
    process = subprocess.Popen(
        [str(require("litestream")), "replicate", "-config", str(config)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        shipped = _new_upload(edge, s3_server, set())  # the first snapshot
        for user in users:
            add_user(edge.state / "db.sqlite", user)
            shipped = _new_upload(edge, s3_server, shipped)
    finally:
        process.terminate()
        process.wait(timeout=30)


def _next_whole_second() -> str:
    """The next whole second (what --at takes), once it has passed: after every write so far."""
    moment = int(time.time()) + 1
    time.sleep(moment + 0.1 - time.time())
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _new_upload(edge: Edge, s3_server: S3Server, seen: set[str], limit: float = 30) -> set[str]:
    """The database's objects in the bucket, once one beyond `seen` is there."""
    prefix = f"{edge.backup['BACKUP_PREFIX']}/db/"
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        listed = s3_server.client().list_objects_v2(
            Bucket=edge.backup["BACKUP_BUCKET"], Prefix=prefix
        )
        keys = {item["Key"] for item in listed.get("Contents", [])}
        if keys - seen:
            return keys
        time.sleep(0.1)
    raise AssertionError(f"Litestream uploaded nothing new under {prefix} in {limit:g} s")


def test_replication_goes_on_from_the_restored_point(
    tmp_path: Path, s3_server: S3Server, owner: tuple[Path, str]
) -> None:
    """After --at, Litestream streams the restored database: the later history is not back."""
    bucket = s3_server.new_bucket()
    edge = make_edge(tmp_path / "a", s3_server, bucket, owner[1])
    database = shaped_database(edge.state / "db.sqlite", "0.29.2")
    _replicate(edge, s3_server, "before")
    between = _next_whole_second()
    _replicate(edge, s3_server, "after")
    assert edge.run("restore-state.sh", "--at", between, "--force").returncode == 0
    _replicate(edge, s3_server, "since-the-restore")
    assert rows(database) == ["homelab", "before", "since-the-restore"]
    later = make_edge(tmp_path / "b", s3_server, bucket, owner[1])
    assert later.run("restore-state.sh").returncode == 0
    assert rows(later.state / "db.sqlite") == ["homelab", "before", "since-the-restore"]
