"""The edge's software, fetched from the config bucket and installed only if it is the one pinned.

    python3 -m homelab_tunnel.edge.software install

user_data carries only a loader (this module and the S3 client) and the
SHA-256 of the software bundle (edge.env's SOFTWARE_SHA256); the bundle itself
(bootstrap.sh, the units, the edge's modules) waits in the config bucket, where
Terraform put it before the droplet was created. The bootstrap unit runs this
first: it downloads the bundle with the read-only key, refuses any byte that
differs from the pinned hash, unpacks it and reloads systemd. A bucket that
does not answer is asked again with growing waits (30 s doubling, at most
15 minutes), each failure recorded where the health agent looks; nothing
unverified is ever unpacked. Installing the same bundle again does nothing.
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from homelab_tunnel.edge import s3
from homelab_tunnel.edge.envfile import EnvFileError, read

EDGE_ENV = "etc/homelab-tunnel/edge.env"
CHANNEL_ENV = "etc/homelab-tunnel/channel.env"
INSTALLED = "usr/local/lib/homelab-tunnel/.software-sha256"
STATUS = "var/lib/homelab-tunnel/bootstrap-status"
LONGEST_WAIT = 900


class SoftwareError(Exception):
    """The bundle could not be fetched, or is not the pinned one."""


def fetch(settings: s3.Settings, key: str, sha256: str) -> bytes:
    with tempfile.TemporaryFile() as body:
        answer = s3.request(settings, "GET", key, download=body)
        s3.check(answer, f"get {key}")
        body.seek(0)
        data = body.read()
    if hashlib.sha256(data).hexdigest() != sha256:
        raise SoftwareError(
            f"{key} does not match SOFTWARE_SHA256 in edge.env; not installed (the bucket "
            "holds something Terraform did not pin for this droplet)"
        )
    return data


def unpack(data: bytes, root: Path) -> None:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:bz2") as tar:
        tar.extractall(root, filter="data")


def install(root: Path, *, sleep: bool = True) -> str:
    edge = read(root / EDGE_ENV)
    channel = read(root / CHANNEL_ENV)
    sha256 = edge["SOFTWARE_SHA256"]
    marker = root / INSTALLED
    if marker.exists() and marker.read_text().strip() == sha256:
        return f"software {sha256[:12]} already installed"
    settings = s3.Settings.from_env(channel, prefix="CHANNEL_")
    key = channel["CHANNEL_SOFTWARE_KEY"]
    failures = 0
    while True:
        try:
            data = fetch(settings, key, sha256)
            break
        except (s3.S3Error, SoftwareError) as exc:
            failures += 1
            wait = min(30 * 2 ** (failures - 1), LONGEST_WAIT)
            _status(root, f"failed: cannot install the edge software: {exc}; retrying in {wait}s")
            print(f"homelab-tunnel: software: {exc}; retrying in {wait}s", flush=True)
            if not sleep:
                raise
            time.sleep(wait)
    unpack(data, root)
    marker.write_text(sha256 + "\n")
    if root == Path("/"):
        subprocess.run(["systemctl", "daemon-reload"], check=True)
    return f"software {sha256[:12]} installed from s3://{settings.bucket}/{key}"


def _status(root: Path, line: str) -> None:
    path = root / STATUS
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(line + "\n")


def main(argv: list[str], env: Mapping[str, str]) -> int:
    if argv != ["install"]:
        print("usage: python3 -m homelab_tunnel.edge.software install", file=sys.stderr)
        return 2
    root = Path(env.get("HOMELAB_TUNNEL_ROOT") or "/")
    try:
        print(f"homelab-tunnel: {install(root)}", flush=True)
    except (OSError, KeyError, ValueError, tarfile.TarError, s3.UsageError, EnvFileError) as exc:
        print(f"homelab-tunnel: FAILED: cannot install the edge software: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], os.environ))
