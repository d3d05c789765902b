"""bootstrap.sh in a sandbox: a scratch root tree and recording fakes on PATH.

A scratch root stands for the droplet (HOMELAB_TUNNEL_ROOT), with the files
cloud-init writes; the system commands are tests/support/fake_system.py's
unless a test takes a real one off the list (the volume step with real loop
devices does). The edge's S3 client talks to moto on 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from homelab_tunnel.config import TunnelConfig
from homelab_tunnel.edge import envfile
from homelab_tunnel.payload import first_boot_files, fixed_files
from homelab_tunnel.render.user_data import CONF, EDGE_SECRET_PATH
from support.channel import EDGE_SECRET, channel_env, publish_config
from support.fake_system import fake_system
from support.moto_s3 import S3Server

FAKED_COMMANDS = (
    "blkid", "mkfs.ext4", "mount", "mountpoint", "findmnt", "curl", "gpg", "systemctl",
    "apt-get", "dpkg-query", "dpkg", "headscale", "tailscale", "chown", "caddy", "sleep",
    "update-ca-certificates", "litestream", "age", "age-keygen", "nft", "iptables", "setpriv",
)  # fmt: skip
LIB = "usr/local/lib/homelab-tunnel"
__all__ = ["EDGE_SECRET", "Sandbox", "make_sandbox"]


@dataclass
class Sandbox:
    root: Path
    state: Path
    env: dict[str, str]
    backup: dict[str, str]

    def run(
        self, scenario: str = "", steps: tuple[str, ...] = ()
    ) -> subprocess.CompletedProcess[str]:
        """bootstrap.sh as shipped: every step, or only `steps`, as its command line takes them."""
        env = {**self.env, "FAKE_SCENARIO": scenario}
        return subprocess.run(
            ["bash", str(self.root / LIB / "bootstrap.sh"), *steps],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def calls(self) -> list[list[str]]:
        path = self.state / "calls.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines()]

    def reset_calls(self) -> None:
        (self.state / "calls.jsonl").unlink(missing_ok=True)

    def step(self, name: str) -> str:
        """What bootstrap step `name` did, as it recorded it; '' if it did not run."""
        path = self.root / "run/homelab-tunnel/bootstrap" / name
        return path.read_text().strip() if path.exists() else ""

    def status(self) -> str:
        """What the health agent reads: "ready: ..." or "failed: why"."""
        return (self.root / "var/lib/homelab-tunnel/bootstrap-status").read_text()

    def machine(self) -> dict[str, object]:
        return dict(json.loads((self.state / "state.json").read_text()))

    def tree(self) -> dict[str, str]:
        # Not the steps' records under /run: they say what this run did.
        steps = self.root / "run/homelab-tunnel/bootstrap"
        return {
            str(path.relative_to(self.root)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(self.root.rglob("*"))
            if path.is_file() and steps not in path.parents
        }


def _write_edge_files(root: Path, config: TunnelConfig) -> None:
    """What cloud-init's write_files and the software loader leave behind."""
    for file in [*first_boot_files(config), *fixed_files()]:
        target = root / file.path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(file.content)
        target.chmod(file.mode)
    (root / EDGE_SECRET_PATH.lstrip("/")).write_text(EDGE_SECRET + "\n")


def _host_keys(root: Path) -> None:
    """The droplet's ssh host key, as cloud-init's ssh module makes it at first boot."""
    key = root / "etc/ssh/ssh_host_ed25519_key"
    key.parent.mkdir(parents=True)
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "root@droplet", "-f", str(key)],
        check=True,
        capture_output=True,
        timeout=30,
    )


def _point_channel_at(root: Path, config: TunnelConfig, s3: S3Server) -> None:
    """channel.env pointed at a fresh bucket on the loopback S3, the config published there."""
    bucket = s3.new_bucket()
    values = channel_env(
        config, endpoint=s3.endpoint, region="ams3", bucket=bucket,
        access_key=s3.access_key, secret_key=s3.secret_key,
    )  # fmt: skip
    path = root / CONF.lstrip("/") / "channel.env"
    path.write_text("".join(f"{key}={value}\n" for key, value in values.items()))
    publish_config(s3.client(), bucket, config)


def _point_backups_at(root: Path, s3: S3Server) -> dict[str, str]:
    """backup.env as Terraform fills it, but for a fresh bucket on the loopback S3."""
    path = root / CONF.lstrip("/") / "backup.env"
    values = envfile.read(path)
    values.update(s3.env(s3.new_bucket(), prefix=values["BACKUP_PREFIX"]))
    path.write_text("".join(f"{key}={value}\n" for key, value in values.items()))
    assert "digitaloceanspaces.com" not in path.read_text()
    return values


@contextmanager
def make_sandbox(
    tmp_path: Path,
    config: TunnelConfig,
    *,
    s3: S3Server | None = None,
    volume: bool | Path = True,
    real: tuple[str, ...] = (),
) -> Iterator[Sandbox]:
    """`s3`: the loopback S3 the config channel (and backups) use; without it, only
    steps that need no bucket can run. `volume`: none (False), a readable file, or a
    link to this block device; `real`: commands taken off the fakes, so the machine's
    own run."""
    root = tmp_path / "root"
    state = tmp_path / "fake-state"
    bin_dir = tmp_path / "bin"
    for directory in (root, state, bin_dir, root / "usr/share/keyrings", root / "etc/caddy"):
        directory.mkdir(parents=True, exist_ok=True)
    # bootstrap parses JSON with python3; a version manager's shim on PATH would
    # cost a fifth of a second per call.
    (bin_dir / "python3").symlink_to(sys.executable)
    (root / "etc/os-release").write_text('NAME="Ubuntu"\nID=ubuntu\nVERSION_CODENAME=noble\n')
    (root / "var/lib/apt/lists/partial").mkdir(parents=True)
    if volume:
        device = root / "dev/disk/by-id" / f"scsi-0DO_Volume_{config.volume_name}"
        device.parent.mkdir(parents=True)
        if isinstance(volume, Path):
            device.symlink_to(volume)  # as /dev/disk/by-id links to /dev/sdX
        else:
            device.write_bytes(bytes(65536))  # readable: bootstrap reads its first 64 KiB
    _write_edge_files(root, config)
    _host_keys(root)
    backup: dict[str, str] = {}
    if s3 is not None:
        _point_channel_at(root, config, s3)
        if config.backup.enabled:
            backup = _point_backups_at(root, s3)
    env = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "TMPDIR": str(tmp_path),
        "HOMELAB_TUNNEL_ROOT": str(root),
        "HOMELAB_TUNNEL_RESERVED_IP_WAIT": "30",
    }
    faked = tuple(command for command in FAKED_COMMANDS if command not in real)
    with fake_system(state, root, bin_dir, faked):
        yield Sandbox(root, state, env, backup)
