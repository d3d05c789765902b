"""The key backup, the seal and restore-state.sh as shipped, with the real age, the real
Litestream 0.5.18 (tools/binaries.toml) and moto's S3 on 127.0.0.1; only systemctl, chown
and systemd-run are fakes (systemd-run runs the command in the foreground).

A scratch root stands for the edge (HOMELAB_TUNNEL_ROOT): the bundle's files,
backup.env pointed at the loopback bucket, Litestream's config at the root's
database, an edge secret of its own. One edge is backed up once per module
(database streamed by a real `litestream replicate` and sealed, keys by the key
backup); each test restores from it into a root of its own. What an attacker
with the bucket's key pair can do is done here with that key pair alone.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import secrets
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

from homelab_tunnel.edge import s3
from homelab_tunnel.edge.agekey import identity_from_secret
from homelab_tunnel.edge.derive import derived_key, sign, verify
from homelab_tunnel.payload import first_boot_files, fixed_files
from homelab_tunnel.render.backup import render_litestream_config
from homelab_tunnel.render.secrets import BACKUP_ACCESS_KEY, BACKUP_SECRET_KEY, EDGE_SECRET, fill

LIB = "usr/local/lib/homelab-tunnel"
HS = "var/lib/headscale"
FAKES = {
    # Units are never running here: the restore unit ran in the foreground (below).
    "systemctl": '#!/bin/sh\n[ "$1" = is-active ] && exit 3\necho "systemctl $*" >>"$FAKE_LOG"\n',
    "chown": '#!/bin/sh\necho "chown $*" >>"$FAKE_LOG"\n',
    # The unit's command, in the foreground: done by the time the caller looks.
    "systemd-run": (
        '#!/bin/sh\necho "systemd-run $*" >>"$FAKE_LOG"\n'
        'while [ "$1" != -- ]; do shift; done\nshift\n"$@" >/dev/null\nexit 0\n'
    ),
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
    secret: str

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

    def module(self, name: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """`python3 -m homelab_tunnel.edge.<name>` as its unit runs it."""
        return subprocess.run(
            ["python3", "-m", f"homelab_tunnel.edge.{name}"],
            env={**self.env, "PYTHONPATH": str(self.root / LIB)},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def back_up_keys(self) -> subprocess.CompletedProcess[str]:
        return self.module("keybackup")

    def seal(self) -> subprocess.CompletedProcess[str]:
        done = self.module("seal")
        assert done.returncode == 0, done.stderr
        return done

    def calls(self) -> list[str]:
        log = Path(self.env["FAKE_LOG"])
        return log.read_text().splitlines() if log.exists() else []

    def settings(self) -> s3.Settings:
        return s3.Settings.from_env(self.backup)


def make_edge(
    tmp_path: Path, s3_server: S3Server, bucket: str, owner: str, secret: str | None = None
) -> Edge:
    """A root as cloud-init leaves it, backups pointed at `bucket` on the loopback S3."""
    root = tmp_path / "root"
    config = config_with()
    backup = {**s3_server.env(bucket), "BACKUP_RECIPIENTS": owner}
    secret = secret or secrets.token_urlsafe(32)
    values = {
        BACKUP_ACCESS_KEY: backup["BACKUP_ACCESS_KEY_ID"],
        BACKUP_SECRET_KEY: backup["BACKUP_SECRET_ACCESS_KEY"],
        EDGE_SECRET: secret,
    }
    for file in [*first_boot_files(config), *fixed_files()]:
        target = root / file.path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(fill(file.content, values))
        target.chmod(file.mode)
    conf = root / "etc/homelab-tunnel"
    (conf / "backup.env").write_text("".join(f"{k}={v}\n" for k, v in backup.items()))
    litestream = (
        fill(render_litestream_config(config), values)
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
        "AWS_CA_BUNDLE": "/nonexistent/ca.pem",  # as in this sandbox: the programs unset it
    }
    (root / HS).mkdir(parents=True, exist_ok=True)
    return Edge(root, env, backup, secret)


def rows(database: Path) -> list[str]:
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as connection:
        names = [str(row[0]) for row in connection.execute("SELECT name FROM users ORDER BY id")]
    connection.close()
    return names


def add_user(database: Path, name: str) -> None:
    with sqlite3.connect(database) as connection:
        connection.execute("INSERT INTO users (name) VALUES (?)", (name,))
    connection.close()


def age_keypair(path: Path) -> str:
    subprocess.run(["age-keygen", "-o", str(path)], check=True, capture_output=True)
    return subprocess.run(
        ["age-keygen", "-y", str(path)], check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture(scope="module")
def owner(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The owner's age identity (kept off the edge) and its public recipient."""
    identity = tmp_path_factory.mktemp("owner") / "owner.key"
    return identity, age_keypair(identity)


@dataclass(frozen=True)
class BackedUp:
    bucket: str
    secret: str
    between: str  # a time after the first user was streamed and sealed, before the second
    keys: dict[str, bytes]


@pytest.fixture(scope="module")
def backed_up(
    tmp_path_factory: pytest.TempPathFactory, s3_server: S3Server, owner: tuple[Path, str]
) -> Iterator[BackedUp]:
    """An edge that ran with backups on: two users a few seconds apart, each sealed, both keys."""
    bucket = s3_server.new_bucket()
    edge = make_edge(tmp_path_factory.mktemp("primary"), s3_server, bucket, owner[1])
    shaped_database(edge.state / "db.sqlite", "0.29.2")
    _replicate(edge, s3_server, "before")
    edge.seal()
    between = _next_whole_second()
    _replicate(edge, s3_server, "after")
    keys = {"noise_private.key": os.urandom(72), "derp_server_private.key": os.urandom(64)}
    for name, data in keys.items():
        (edge.state / name).write_bytes(data)
    done = edge.back_up_keys()
    assert done.returncode == 0, done.stderr
    edge.seal()
    yield BackedUp(bucket, edge.secret, between, keys)


@pytest.fixture
def blank(
    tmp_path: Path, s3_server: S3Server, backed_up: BackedUp, owner: tuple[Path, str]
) -> Edge:
    """A new droplet on a blank volume, pointed at the backed-up edge's bucket (same secret)."""
    return make_edge(tmp_path, s3_server, backed_up.bucket, owner[1], backed_up.secret)


# ---------------------------------------------------------------------------
# The key backup
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


def _identity(tmp_path: Path, name: str, secret: str) -> Path:
    path = tmp_path / name
    path.write_text(identity_from_secret(secret) + "\n")
    return path


def test_keys_are_encrypted_to_the_owner_and_to_the_edge(
    keyed: Edge, owner: tuple[Path, str], tmp_path: Path
) -> None:
    done = keyed.back_up_keys()
    assert done.returncode == 0, done.stderr
    bucket = keyed.backup["BACKUP_BUCKET"]
    assert done.stdout == (
        f"backup-keys: 2 key file(s) uploaded to s3://{bucket}/homelab-edge/keys/\n"
    )
    edge_identity = _identity(tmp_path, "edge.key", keyed.secret)
    for name in ("noise_private.key", "derp_server_private.key"):
        plain = (keyed.state / name).read_bytes()
        assert _decrypt(keyed, name, owner[0], tmp_path) == plain
        assert _decrypt(keyed, name, edge_identity, tmp_path) == plain
    listed = [key for _, _, key in s3.listing(keyed.settings(), "homelab-edge/keys/")]
    assert sorted(listed) == [
        "homelab-edge/keys/derp_server_private.key.age",
        "homelab-edge/keys/manifest.sha256",
        "homelab-edge/keys/noise_private.key.age",
    ]
    assert keyed.backup["BACKUP_SECRET_ACCESS_KEY"] not in done.stdout + done.stderr


def test_the_bucket_key_pair_alone_decrypts_nothing(keyed: Edge, tmp_path: Path) -> None:
    """Everything a bucket-only holder can derive an identity from opens no key file."""
    assert keyed.back_up_keys().returncode == 0
    stranger = tmp_path / "stranger.key"
    age_keypair(stranger)
    guesses = [
        stranger,
        _identity(tmp_path, "from-secret.key", keyed.backup["BACKUP_SECRET_ACCESS_KEY"]),
        _identity(tmp_path, "from-id.key", keyed.backup["BACKUP_ACCESS_KEY_ID"]),
    ]
    for name in ("noise_private.key", "derp_server_private.key"):
        for guess in guesses:
            with pytest.raises(subprocess.CalledProcessError):
                _decrypt(keyed, name, guess, tmp_path)
    # The twin: the edge secret, which is not in backup.env, does open them.
    edge_identity = _identity(tmp_path, "edge.key", keyed.secret)
    noise = (keyed.state / "noise_private.key").read_bytes()
    assert _decrypt(keyed, "noise_private.key", edge_identity, tmp_path) == noise
    assert keyed.secret not in (keyed.root / "etc/homelab-tunnel/backup.env").read_text()


def test_the_manifest_names_every_file_and_is_signed_with_the_edge_secret(
    keyed: Edge, tmp_path: Path
) -> None:
    assert keyed.back_up_keys().returncode == 0
    manifest = tmp_path / "manifest"
    s3.get(keyed.settings(), "homelab-edge/keys/manifest.sha256", manifest)
    body = verify(keyed.secret, "keys", manifest.read_bytes()).decode()
    names = [line.split("  ")[1] for line in body.splitlines()]
    assert names == [
        "noise_private.key",
        "noise_private.key.age",
        "derp_server_private.key",
        "derp_server_private.key.age",
    ]
    noise = hashlib.sha256((keyed.state / "noise_private.key").read_bytes()).hexdigest()
    assert body.splitlines()[0] == f"{noise}  noise_private.key"
    with pytest.raises(Exception, match="does not match"):
        verify(keyed.backup["BACKUP_SECRET_ACCESS_KEY"], "keys", manifest.read_bytes())


def test_unchanged_keys_are_not_uploaded_again(keyed: Edge) -> None:
    assert keyed.back_up_keys().returncode == 0
    again = keyed.back_up_keys()
    assert again.stdout.startswith("backup-keys: 0 key file(s) uploaded")


def test_a_changed_key_is_uploaded_with_a_new_manifest(keyed: Edge, tmp_path: Path) -> None:
    assert keyed.back_up_keys().returncode == 0
    (keyed.state / "derp_server_private.key").write_bytes(b"a new derp key")
    done = keyed.back_up_keys()
    assert done.stdout.startswith("backup-keys: 1 key file(s) uploaded")
    manifest = tmp_path / "manifest"
    s3.get(keyed.settings(), "homelab-edge/keys/manifest.sha256", manifest)
    digest = hashlib.sha256(b"a new derp key").hexdigest()
    assert f"{digest}  derp_server_private.key\n" in manifest.read_text()


def test_a_key_missing_from_the_bucket_is_uploaded_again(keyed: Edge) -> None:
    assert keyed.back_up_keys().returncode == 0
    s3.delete(keyed.settings(), "homelab-edge/keys/noise_private.key.age")
    assert keyed.back_up_keys().stdout.startswith("backup-keys: 1 key file(s) uploaded")


def test_new_recipients_re_encrypt_every_key(keyed: Edge, tmp_path: Path) -> None:
    """As after the owner adds a key (or the edge secret is replaced)."""
    assert keyed.back_up_keys().returncode == 0
    second = tmp_path / "second.key"
    recipient = age_keypair(second)
    env_file = keyed.root / "etc/homelab-tunnel/backup.env"
    text = env_file.read_text()
    env_file.write_text(text.replace("BACKUP_RECIPIENTS=", f"BACKUP_RECIPIENTS={recipient} "))
    assert keyed.back_up_keys().stdout.startswith("backup-keys: 2 key file(s) uploaded")
    noise = (keyed.state / "noise_private.key").read_bytes()
    assert _decrypt(keyed, "noise_private.key", second, tmp_path) == noise


def test_a_key_file_planted_as_a_link_is_refused_not_followed(keyed: Edge, tmp_path: Path) -> None:
    """The headscale user links noise_private.key to a root-only file: nothing of it leaves."""
    private = tmp_path / "root-only"
    private.write_bytes(b"root's own secret")
    private.chmod(0o600)
    (keyed.state / "noise_private.key").unlink()
    (keyed.state / "noise_private.key").symlink_to(private)
    done = keyed.back_up_keys()
    assert done.returncode == 1
    assert done.stderr == (
        f"backup-keys: FAILED: {keyed.state}/noise_private.key is a symbolic link; "
        "refusing to read through it\n"
    )
    assert s3.listing(keyed.settings(), "homelab-edge/keys/") == []


def test_a_key_file_with_a_second_hard_link_is_refused(keyed: Edge) -> None:
    os.link(keyed.state / "derp_server_private.key", keyed.state / "elsewhere")
    done = keyed.back_up_keys()
    assert done.returncode == 1
    assert "derp_server_private.key has 2 hard links; refusing to read it" in done.stderr


def test_the_key_backup_waits_while_a_restore_holds_the_lock(keyed: Edge) -> None:
    lock = keyed.root / "run/homelab-tunnel/backups.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        waiting = subprocess.Popen(
            ["python3", "-m", "homelab_tunnel.edge.keybackup"],
            env={**keyed.env, "PYTHONPATH": str(keyed.root / LIB)},
            stdout=subprocess.PIPE,
            text=True,
        )
        time.sleep(1.5)
        assert waiting.poll() is None
        assert s3.listing(keyed.settings(), "homelab-edge/keys/") == []
    out, _ = waiting.communicate(timeout=60)
    assert waiting.returncode == 0
    assert out.startswith("backup-keys: 2 key file(s) uploaded")


# ---------------------------------------------------------------------------
# The seal
# ---------------------------------------------------------------------------


def test_a_seal_is_uploaded_when_the_database_changed_and_only_then(
    keyed: Edge, tmp_path: Path
) -> None:
    database = shaped_database(keyed.state / "db.sqlite", "0.29.2")
    first = keyed.seal().stdout
    assert first.startswith("seal: sealed ")
    assert keyed.seal().stdout.startswith("seal: unchanged since ")
    add_user(database, "someone")
    assert keyed.seal().stdout.startswith("seal: sealed ")
    seals = [key for _, _, key in s3.listing(keyed.settings(), "homelab-edge/seals/")]
    assert len(seals) == 2
    for key in seals:
        path = tmp_path / "seal"
        s3.get(keyed.settings(), key, path)
        body = verify(keyed.secret, "seal", path.read_bytes()).decode()
        assert body.startswith("homelab-tunnel database seal v1\ndigest ")
        assert key.endswith("-" + body.split()[5])  # named for its digest


def test_a_deleted_seal_is_uploaded_again(keyed: Edge) -> None:
    shaped_database(keyed.state / "db.sqlite", "0.29.2")
    keyed.seal()
    [key] = [key for _, _, key in s3.listing(keyed.settings(), "homelab-edge/seals/")]
    s3.delete(keyed.settings(), key)
    assert keyed.seal().stdout.startswith("seal: sealed ")


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
    assert sorted(p.name for p in blank.state.iterdir()) == [
        ".homelab-tunnel-initialized",
        "db.sqlite",
        "derp_server_private.key",
        "noise_private.key",
    ]
    assert rows(blank.state / "db.sqlite") == ["homelab", "before", "after"]
    for name, data in backed_up.keys.items():
        assert (blank.state / name).read_bytes() == data
        assert (blank.state / name).stat().st_mode & 0o777 == 0o600
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


def _bucket_only(edge: Edge) -> s3.Settings:
    """What an attacker holds: the bucket's key pair, nothing of the edge secret."""
    return s3.Settings.from_env(edge.backup)


def test_a_planted_database_is_refused_and_the_volume_stays_blank(
    tmp_path: Path, s3_server: S3Server, owner: tuple[Path, str]
) -> None:
    """Someone with the bucket's key pair streams a database of their own into the bucket."""
    bucket = s3_server.new_bucket()
    edge = make_edge(tmp_path / "edge", s3_server, bucket, owner[1])
    shaped_database(edge.state / "db.sqlite", "0.29.2")
    _replicate(edge, s3_server, "before")
    edge.seal()
    settings = _bucket_only(edge)
    for _, _, key in s3.listing(settings, "homelab-edge/db/"):
        s3.delete(settings, key)
    attacker = make_edge(tmp_path / "attacker", s3_server, bucket, owner[1])  # another secret
    shaped_database(attacker.state / "db.sqlite", "0.29.2")
    _replicate(attacker, s3_server, "attacker")  # Litestream needs only the bucket's key pair
    new = make_edge(tmp_path / "new", s3_server, bucket, owner[1], edge.secret)
    done = new.run("restore-state.sh")
    assert done.returncode == 1
    assert done.stderr == (
        f"restore-state: FAILED: the database in s3://{bucket}/homelab-edge/db carries no "
        "seal of this edge at its newest or its last sealed points (written by another edge "
        "secret, or planted); nothing installed\n"
    )
    assert list(new.state.iterdir()) == []


def test_a_sealed_point_is_restored_when_the_newest_database_has_no_seal(
    tmp_path: Path, s3_server: S3Server, owner: tuple[Path, str]
) -> None:
    """A change in the last seconds before the volume was lost: the sealed state before it."""
    bucket = s3_server.new_bucket()
    edge = make_edge(tmp_path / "edge", s3_server, bucket, owner[1])
    shaped_database(edge.state / "db.sqlite", "0.29.2")
    _replicate(edge, s3_server, "before")
    edge.seal()
    time.sleep(7)  # past the seal, and past the restore's first try after it
    _replicate(edge, s3_server, "unsealed")
    new = make_edge(tmp_path / "new", s3_server, bucket, owner[1], edge.secret)
    done = new.run("restore-state.sh")
    assert done.returncode == 0, done.stderr
    assert rows(new.state / "db.sqlite") == ["homelab", "before"]


def test_keys_under_a_manifest_the_edge_did_not_sign_restore_nothing(
    blank: Edge, tmp_path: Path, s3_server: S3Server, owner: tuple[Path, str]
) -> None:
    """The attacker uploads their own noise key and a manifest that names it: refused."""
    edge = make_edge(tmp_path / "other", s3_server, s3_server.new_bucket(), owner[1])
    (edge.state / "noise_private.key").write_bytes(b"the edge's own")
    assert edge.back_up_keys().returncode == 0
    planted = tmp_path / "planted"
    planted.write_bytes(b"the attacker's key")
    recipient = identity_public(tmp_path, edge.backup["BACKUP_SECRET_ACCESS_KEY"])
    encrypted = tmp_path / "noise.age"
    subprocess.run(["age", "-r", recipient, "-o", str(encrypted), str(planted)], check=True)
    settings = _bucket_only(edge)
    s3.put(settings, "homelab-edge/keys/noise_private.key.age", encrypted)
    for secret in ("", edge.backup["BACKUP_SECRET_ACCESS_KEY"]):
        lines = (
            f"{hashlib.sha256(planted.read_bytes()).hexdigest()}  noise_private.key\n"
            f"{hashlib.sha256(encrypted.read_bytes()).hexdigest()}  noise_private.key.age\n"
        ).encode()
        manifest = tmp_path / "manifest"
        manifest.write_bytes(sign(secret, "keys", lines) if secret else lines)
        s3.put(settings, "homelab-edge/keys/manifest.sha256", manifest)
        (edge.state / "noise_private.key").unlink(missing_ok=True)
        done = edge.run("restore-state.sh")
        assert done.returncode == 1
        why = "its MAC does not match this edge's secret" if secret else "it carries no MAC"
        assert done.stderr == (
            "restore-state: FAILED: homelab-edge/keys/manifest.sha256 was not written by this "
            f"edge ({why}); no key file restored\n"
        )
        assert list(edge.state.iterdir()) == []


def identity_public(tmp_path: Path, secret: str) -> str:
    identity = _identity(tmp_path, "guess.key", secret)
    return subprocess.run(
        ["age-keygen", "-y", str(identity)], capture_output=True, text=True, check=True
    ).stdout.strip()


def test_a_key_object_swapped_under_a_valid_manifest_is_refused(
    tmp_path: Path, s3_server: S3Server, owner: tuple[Path, str]
) -> None:
    """The manifest is the edge's, but the .age object is not the one it names."""
    edge = make_edge(tmp_path, s3_server, s3_server.new_bucket(), owner[1])
    (edge.state / "noise_private.key").write_bytes(b"noise")
    assert edge.back_up_keys().returncode == 0
    swapped = tmp_path / "noise.age"
    subprocess.run(["age", "-r", owner[1], "-o", str(swapped)], input=b"other", check=True)
    s3.put(_bucket_only(edge), "homelab-edge/keys/noise_private.key.age", swapped)
    (edge.state / "noise_private.key").unlink()
    done = edge.run("restore-state.sh")
    assert done.returncode == 1
    assert done.stderr == (
        "restore-state: FAILED: homelab-edge/keys/noise_private.key.age is not the one this "
        "edge's manifest names\n"
    )
    assert list(edge.state.iterdir()) == []


def test_a_restore_left_half_done_stops_the_next_boot(blank: Edge) -> None:
    (blank.state / ".homelab-tunnel-restoring").write_text("homelab-tunnel-restore-x since t\n")
    done = blank.run("restore-state.sh")
    assert done.returncode == 1
    assert done.stderr.startswith(
        "restore-state: FAILED: a restore did not finish on this volume "
        "(homelab-tunnel-restore-x since t); Headscale stays stopped."
    )
    assert not (blank.state / "db.sqlite").exists()


# ---------------------------------------------------------------------------
# restore-state.sh --list, --at and --status, by hand
# ---------------------------------------------------------------------------


def test_list_shows_the_database_range_the_seals_and_the_key_objects(
    blank: Edge, backed_up: BackedUp
) -> None:
    done = blank.run("restore-state.sh", "--list")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("database: from 20")
    first, last = lines[0].removeprefix("database: from ").split(" to ")
    assert first <= backed_up.between <= last
    assert lines[1].startswith("sealed: 2 point(s), newest 20")
    keys = [line.split()[-1] for line in lines if line.startswith("keys: ")]
    assert keys == [
        "homelab-edge/keys/derp_server_private.key.age",
        "homelab-edge/keys/manifest.sha256",
        "homelab-edge/keys/noise_private.key.age",
    ]


def test_list_shows_an_object_with_control_characters_escaped(
    blank: Edge, backed_up: BackedUp, tmp_path: Path
) -> None:
    stray = "homelab-edge/pre-upgrade/evil\x1b[2J\x07.sqlite"
    copy = tmp_path / "copy.sqlite"
    copy.write_bytes(b"not really a database")
    s3.put(blank.settings(), stray, copy)
    try:
        done = blank.run("restore-state.sh", "--list")
    finally:
        s3.delete(blank.settings(), stray)
    assert done.returncode == 0, done.stderr
    (line,) = [line for line in done.stdout.splitlines() if "evil" in line]
    assert line.startswith("pre-upgrade copy: 20")
    assert line.endswith(" homelab-edge/pre-upgrade/evil\\x1b[2J\\x07.sqlite")
    assert "\x1b" not in done.stdout and "\x07" not in done.stdout


def test_at_refuses_a_volume_with_a_database_without_force(blank: Edge) -> None:
    shaped_database(blank.state / "db.sqlite", "0.29.2")
    done = blank.run("restore-state.sh", "--at", "2026-11-29T21:00:00Z")
    assert done.returncode == 1
    assert "the volume holds a database; add --force" in done.stdout
    assert [call for call in blank.calls() if call.startswith("systemctl")] == []


@pytest.mark.parametrize("when", ["yesterday", "2026-11-29 21:00", "2026-11-29T21:00:00"])
def test_at_takes_only_rfc_3339(blank: Edge, when: str) -> None:
    done = blank.run("restore-state.sh", "--at", when, "--force")
    assert done.returncode == 1
    assert "--at takes an RFC 3339 time" in done.stdout


def _current_state(edge: Edge) -> Path:
    for name in ("db.sqlite", "db.sqlite-wal", "db.sqlite-shm"):
        (edge.state / name).unlink(missing_ok=True)
    current = shaped_database(edge.state / "db.sqlite", "0.29.2")
    add_user(current, "written-since")
    (edge.state / "noise_private.key").write_bytes(b"the current noise key")
    (edge.state / ".homelab-tunnel-headscale-version").write_text("0.29.2\n")
    return current


def test_at_force_restores_that_moment_and_keeps_what_was_there(
    blank: Edge, backed_up: BackedUp
) -> None:
    _current_state(blank)
    done = blank.run("restore-state.sh", "--at", backed_up.between, "--force")
    assert done.returncode == 0, done.stdout + done.stderr
    assert rows(blank.state / "db.sqlite") == ["homelab", "before"]
    [aside] = list((blank.state / "pre-restore").iterdir())
    assert rows(aside / "db.sqlite") == ["homelab", "written-since"]
    assert (aside / "noise_private.key").read_bytes() == b"the current noise key"
    assert (aside / ".homelab-tunnel-headscale-version").exists()
    assert (blank.state / "noise_private.key").read_bytes() == backed_up.keys["noise_private.key"]
    assert not (blank.state / ".homelab-tunnel-restoring").exists()
    units = (
        "headscale homelab-tunnel-litestream homelab-tunnel-backup-keys.path "
        "homelab-tunnel-backup-keys.timer homelab-tunnel-seal.timer"
    )
    [detached, *systemctl] = blank.calls()
    assert detached.startswith("systemd-run --unit=homelab-tunnel-restore-")
    unit = detached.split()[1].removeprefix("--unit=")
    assert detached.endswith(f"--at {backed_up.between} --force --in-unit {unit}")
    assert systemctl == [
        f"systemctl stop {units}",
        f"systemctl start {units}",
        "systemctl start --no-block homelab-tunnel-backup-keys.service homelab-tunnel-seal.service",
    ]
    lines = done.stdout.splitlines()
    assert lines[0].startswith("restore-state: running as homelab-tunnel-restore-")
    assert lines[1] == (
        "restore-state: upgrade guard: Headscale 0.29.2 (database_versions says v0.29.2) -> "
        "0.29.2: allowed"
    )
    assert lines[-1] == (
        f"restore-state: restored the database as of {backed_up.between}; "
        f"the previous state is in {aside}"
    )
    record = (blank.root / "var/lib/homelab-tunnel/restored").read_text()
    assert f" database as of {backed_up.between} (by hand;" in record
    status = blank.run("restore-state.sh", "--status")
    assert (status.returncode, status.stdout.splitlines()) == (0, lines[1:])


def test_at_a_time_before_any_backup_changes_nothing(blank: Edge) -> None:
    current = shaped_database(blank.state / "db.sqlite", "0.29.2")
    before = current.read_bytes()
    done = blank.run("restore-state.sh", "--at", "2001-01-01T00:00:00Z", "--force")
    assert done.returncode == 1
    assert "no database backup at or before 2001-01-01T00:00:00Z" in done.stdout
    assert current.read_bytes() == before
    assert [call for call in blank.calls() if call.startswith("systemctl")] == []


def test_two_restores_in_the_same_second_set_aside_into_two_folders(
    blank: Edge, backed_up: BackedUp
) -> None:
    for _ in range(2):
        _current_state(blank)
        done = blank.run("restore-state.sh", "--at", backed_up.between, "--force")
        assert done.returncode == 0, done.stdout
    folders = sorted((blank.state / "pre-restore").iterdir())
    assert len(folders) == 2
    assert all(rows(folder / "db.sqlite") == ["homelab", "written-since"] for folder in folders)


def test_a_refused_upgrade_puts_the_previous_state_back(blank: Edge, backed_up: BackedUp) -> None:
    """The guard refuses the restored database: nothing of the restore stays."""
    current = _current_state(blank)
    before = current.read_bytes()
    env = blank.root / "etc/homelab-tunnel/edge.env"
    env.write_text(env.read_text().replace("HEADSCALE_VERSION=0.29.2", "HEADSCALE_VERSION=0.31.0"))
    done = blank.run("restore-state.sh", "--at", backed_up.between, "--force")
    assert done.returncode == 1
    assert done.stdout.splitlines()[-1] == (
        "restore-state: FAILED: Headscale 0.31.0 must not start on the restored database; "
        "the previous state is back and Headscale runs on it"
    )
    assert current.read_bytes() == before
    assert (blank.state / "noise_private.key").read_bytes() == b"the current noise key"
    assert not (blank.state / ".homelab-tunnel-restoring").exists()
    [aside] = list((blank.state / "pre-restore").iterdir())
    assert list(aside.iterdir()) == []
    assert blank.calls()[-1].startswith("systemctl start headscale ")


@pytest.fixture
def tiny_volume(blank: Edge) -> Iterator[Edge]:
    """Headscale's directory on a 512 KiB tmpfs: a real full disk (needs root)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a full filesystem needs root")
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=512k", "tiny", str(blank.state)], check=True
    )
    try:
        yield blank
    finally:
        subprocess.run(["umount", str(blank.state)], check=True)


def test_a_full_disk_half_way_puts_the_previous_state_back(
    tiny_volume: Edge, backed_up: BackedUp
) -> None:
    edge = tiny_volume
    current = _current_state(edge)
    before = current.read_bytes()
    # Room for the restore's mark and the two key files (a page each), not the database.
    room = os.statvfs(edge.state)
    (edge.state / "filler").write_bytes(b"\0" * (room.f_bavail * room.f_frsize - 3 * 4096))
    done = edge.run("restore-state.sh", "--at", backed_up.between, "--force")
    assert done.returncode == 1
    assert done.stdout.splitlines()[-1].startswith("restore-state: FAILED: No space left on device")
    assert done.stdout.splitlines()[-1].endswith(
        "; the previous state is back and Headscale runs on it"
    )
    assert current.read_bytes() == before
    assert (edge.state / "noise_private.key").read_bytes() == b"the current noise key"
    assert not (edge.state / ".homelab-tunnel-restoring").exists()
    assert not [p for p in edge.state.iterdir() if p.name.endswith(".new")]


def test_a_restore_that_cannot_even_roll_back_keeps_headscale_from_starting(
    blank: Edge, backed_up: BackedUp, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The mark stays; the next boot refuses with what to do (units assert its absence)."""
    from homelab_tunnel.edge import nofollow, restore
    from homelab_tunnel.edge.backups import Backup

    _current_state(blank)
    monkeypatch.setenv("PATH", blank.env["PATH"])
    monkeypatch.setenv("FAKE_LOG", blank.env["FAKE_LOG"])
    monkeypatch.delenv("AWS_CA_BUNDLE", raising=False)
    moves = []

    def failing_move(src: int, name: str, dst: int, new_name: str | None = None) -> None:
        moves.append(name)
        if len(moves) > 3:  # on the way back
            raise OSError(5, "Input/output error")
        os.rename(name, new_name or name, src_dir_fd=src, dst_dir_fd=dst)

    write = nofollow.write

    def failing_write(dir_fd: int, name: str, data: bytes, **kwargs: object) -> None:
        if not name.startswith(".homelab-tunnel-"):  # the marks are written, the state is not
            raise OSError(28, "No space left on device")
        write(dir_fd, name, data, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(nofollow, "move", failing_move)
    monkeypatch.setattr(nofollow, "write", failing_write)
    backup = Backup.load(blank.root)
    with pytest.raises(restore.Refused, match="putting the previous state back failed too"):
        restore.at(backup, backed_up.between, True, restore.Report(), "unit-x")
    assert (blank.state / ".homelab-tunnel-restoring").read_text().startswith("unit-x since ")
    monkeypatch.undo()
    boot = blank.run("restore-state.sh")
    assert boot.returncode == 1
    assert "a restore did not finish on this volume (unit-x since " in boot.stderr
    again = blank.run("restore-state.sh", "--at", backed_up.between, "--force")
    assert "a restore did not finish on this volume" in again.stdout


def test_status_says_when_there_was_no_restore(blank: Edge) -> None:
    done = blank.run("restore-state.sh", "--status")
    assert (done.returncode, done.stdout) == (
        0,
        "restore-state: no restore by hand on this edge yet\n",
    )


def test_a_link_planted_in_the_state_directory_is_moved_not_followed(
    blank: Edge, backed_up: BackedUp, tmp_path: Path
) -> None:
    """db.sqlite-wal and the noise key are links to root-only files: the files stay untouched."""
    _current_state(blank)
    targets = {}
    for name in ("db.sqlite-wal", "noise_private.key"):
        target = tmp_path / f"root-only-{name}"
        target.write_bytes(b"root's own")
        target.chmod(0o600)
        (blank.state / name).unlink(missing_ok=True)
        (blank.state / name).symlink_to(target)
        targets[name] = target
    done = blank.run("restore-state.sh", "--at", backed_up.between, "--force")
    assert done.returncode == 0, done.stdout
    [aside] = list((blank.state / "pre-restore").iterdir())
    for name, target in targets.items():
        assert (aside / name).is_symlink()
        assert target.read_bytes() == b"root's own"
        assert target.stat().st_mode & 0o777 == 0o600
    assert not (blank.state / "noise_private.key").is_symlink()
    assert (blank.state / "noise_private.key").read_bytes() == backed_up.keys["noise_private.key"]


# ---------------------------------------------------------------------------
# Streaming with the real Litestream
# ---------------------------------------------------------------------------


def _replicate(edge: Edge, s3_server: S3Server, *users: str) -> None:
    """Run the real `litestream replicate`; add each of `users` once the last change shipped."""
    env = {k: v for k, v in edge.env.items() if k != "AWS_CA_BUNDLE"}
    config = edge.root / "etc/homelab-tunnel/litestream.yml"
    process = subprocess.Popen(
        [str(require("litestream")), "replicate", "-config", str(config), "-no-expand-env"],
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
    edge.seal()
    between = _next_whole_second()
    _replicate(edge, s3_server, "after")
    assert edge.run("restore-state.sh", "--at", between, "--force").returncode == 0
    _replicate(edge, s3_server, "since-the-restore")
    edge.seal()
    assert rows(database) == ["homelab", "before", "since-the-restore"]
    later = make_edge(tmp_path / "b", s3_server, bucket, owner[1], edge.secret)
    assert later.run("restore-state.sh").returncode == 0
    assert rows(later.state / "db.sqlite") == ["homelab", "before", "since-the-restore"]


def test_the_edge_secret_derives_distinct_keys_per_purpose() -> None:
    keys = {derived_key("s", purpose) for purpose in ("age", "keys", "seal", "config")}
    assert len(keys) == 4
    # The form Terraform computes: sha256("homelab-tunnel/config/v1:${secret}").
    assert derived_key("s", "config") == hashlib.sha256(b"homelab-tunnel/config/v1:s").hexdigest()
