"""What the key backup, the seal and the restore share: settings, paths, the secret, one lock.

Settings come from backup.env through the one parser (envfile.py) and the
edge secret from its own file (derive.py); both are 0600 root, and the
bucket's secret never enters a process environment. The lock
(/run/homelab-tunnel/backups.lock, flock) keeps the key backup, the seal and
a restore from running into each other: a restore stops the others' timers,
then works alone.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from homelab_tunnel.edge import envfile, s3
from homelab_tunnel.edge.derive import read_secret

CONF = "etc/homelab-tunnel"
STATE = "var/lib/headscale"
RECORDS = "var/lib/homelab-tunnel"
LOCK = "run/homelab-tunnel/backups.lock"
DATABASE = "db.sqlite"
KEY_FILES = ("noise_private.key", "derp_server_private.key")
LOCK_WAIT = 300.0


class BackupError(Exception):
    """Cannot go on: one line that says why."""


@dataclass(frozen=True)
class Backup:
    root: Path
    settings: s3.Settings
    prefix: str
    recipients: tuple[str, ...]
    retention_days: int
    secret: str = field(repr=False)

    @classmethod
    def load(cls, root: Path) -> Backup:
        path = root / CONF / "backup.env"
        if not path.exists():
            raise BackupError(f"no {path}: backups are off in the config")
        try:
            values = envfile.read(path)
            settings = s3.Settings.from_env(values)
            secret = read_secret(root)
        except (envfile.EnvFileError, s3.UsageError, ValueError) as exc:
            raise BackupError(str(exc)) from None
        return cls(
            root=root,
            settings=settings,
            prefix=values.get("BACKUP_PREFIX", ""),
            recipients=tuple(values.get("BACKUP_RECIPIENTS", "").split()),
            retention_days=int(values.get("BACKUP_RETENTION_DAYS") or 30),
            secret=secret,
        )

    @property
    def state(self) -> Path:
        return self.root / STATE

    @property
    def records(self) -> Path:
        return self.root / RECORDS

    @property
    def conf(self) -> Path:
        return self.root / CONF

    def url(self, suffix: str = "") -> str:
        return f"s3://{self.settings.bucket}/{self.prefix}{suffix}"


def root_dir() -> Path:
    """`/` on the droplet; a scratch tree in tests (HOMELAB_TUNNEL_ROOT)."""
    return Path(os.environ.get("HOMELAB_TUNNEL_ROOT") or "/")


@contextlib.contextmanager
def locked(root: Path, wait: float = LOCK_WAIT) -> Iterator[None]:
    """Hold the backups' lock for the block; BackupError after `wait` seconds."""
    path = root / LOCK
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise BackupError(
                        f"another backup or restore held {path} for {wait:g}s; try again"
                    ) from None
                time.sleep(0.2)
        yield
    finally:
        os.close(fd)
