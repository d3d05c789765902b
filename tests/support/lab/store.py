"""The backup bucket's S3: moto's server in a box of its own, answering as Spaces' endpoint.

The edge gets the rendered backup.env and litestream.yml byte for byte, so it
asks https://<region>.digitaloceanspaces.com. Every box's /etc/hosts names the
store box for exactly that host, and no `<bucket>.<region>...` name: Litestream
0.5.18 addresses buckets path-style whenever an endpoint is set (its s3
replica's ForcePathStyle defaults to true with an endpoint, and nothing in its
DigitalOcean defaults changes that), as the edge's own client always does, so
a virtual-host request would fail here instead of passing unnoticed.

moto's server terminates TLS with a certificate from the store's own CA,
which the edge box's system trust store holds, as a droplet's holds the
public CAs that sign Spaces. It checks signatures (moto's reset-auth, as
tests/support/moto_s3.py does): the key pair filled into user_data, where
Terraform puts the bucket's scoped Spaces key, is an IAM user's. The bucket is
versioned, as the stack's is. The tests read the store with boto3 from inside
its box (box_store.py), independently of the edge's client.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from support.lab.addresses import STORE, Host
from support.lab.boxes import Box
from support.lab.network import Internet
from support.lab.pebble import make_ca, server_certificate
from support.lab.processes import RunState
from support.lab.shell import wait_for

SCRIPT = Path(__file__).resolve().parent / "box_store.py"
TESTS = Path(__file__).resolve().parents[2]


def spaces_host(region: str) -> str:
    return f"{region}.digitaloceanspaces.com"


class Store:
    """moto's S3 in the store box, answering as Spaces: the config bucket, the backup bucket.

    `start()` leaves the keys Terraform would make: `config` reads the config
    bucket only, `backup` reads and writes the backup bucket only; the admin
    key (access_key, secret_key) is the operator's, which Terraform writes with.
    """

    def __init__(
        self, state: RunState, *, region: str, config_bucket: str, backup_bucket: str | None
    ) -> None:
        self.box = Box(state, "store")
        self.directory = state.directory / "store"
        self.region = region
        self.config_bucket = config_bucket
        self.bucket = backup_bucket
        self.host: Host = STORE
        self.access_key = ""
        self.secret_key = ""
        self.keys: dict[str, tuple[str, str]] = {}
        self.ca = self.directory / "store-ca.pem"

    @property
    def name(self) -> str:
        return spaces_host(self.region)

    @property
    def endpoint(self) -> str:
        return f"https://{self.name}"

    def create(self, internet: Internet, hosts: str) -> None:
        self.box.create()
        internet.attach(self.box, self.host, "store0")
        self.box.private_mounts(hosts=hosts, tools={})

    def start(self) -> None:
        """TLS, moto's server on 443, signatures on, the bucket: all within a few seconds."""
        self.ca, ca_key = make_ca(self.directory, "homelab-tunnel lab store CA", "store-ca")
        cert, key = server_certificate(
            self.ca, ca_key, self.name, self.host.address, self.directory / "store"
        )
        argv = [sys.executable, "-m", "moto.server", "-H", self.host.address, "-p", "443",
                "-c", cert, "-k", key]  # fmt: skip
        # Path-style for this host: moto reads `fra1` in fra1.digitaloceanspaces.com as a bucket
        # otherwise (its S3-compatible-endpoint setting, made for Spaces).
        env = {"MOTO_S3_CUSTOM_ENDPOINTS": self.endpoint, "HOME": "/root"}
        self.box.spawn("moto", argv, env=env)
        probe = ["curl", "-sS", "-o", "/dev/null", "--cacert", self.ca, f"{self.endpoint}/"]
        wait_for(
            "moto's S3 on the store box",
            lambda: self.box.run(probe, check=False).returncode == 0,
            30,
            0.1,
        )
        buckets = [self.config_bucket, *([self.bucket] if self.bucket else [])]
        grants = {"config": [self.config_bucket, "read"]}
        if self.bucket:
            grants["backup"] = [self.bucket, "readwrite"]
        made = self._script(
            "setup", env={"STORE_BUCKETS": ",".join(buckets), "STORE_GRANTS": json.dumps(grants)}
        )
        self.access_key, self.secret_key = made["admin"]
        self.keys = {user: (key[0], key[1]) for user, key in made["keys"].items()}

    def objects(self, prefix: str, bucket: str | None = None) -> list[dict[str, Any]]:
        """Every object under `prefix`: key, size, modified (ISO 8601), newest version only."""
        return list(self._script("list", prefix, bucket=bucket))

    def get(self, key: str, target: Path, bucket: str | None = None) -> Path:
        """Download one object to `target` (a path the host sees: the box shares /tmp)."""
        self._script("get", key, str(target), bucket=bucket)
        return target

    def publish(self, key: str, data: bytes, metadata: dict[str, str]) -> None:
        """Write to the config bucket with the operator's key, as `terraform apply` does."""
        self._upload(key, data, metadata, self.config_bucket, (self.access_key, self.secret_key))

    def put(self, key: str, source: Path) -> None:
        """Upload `source` to the backup bucket with its own key pair, as anyone holding it
        could (a leaked key)."""
        assert self.bucket is not None, "no backup bucket in this lab"
        self._upload(key, source.read_bytes(), {}, self.bucket, self.keys["backup"])

    def head(self, key: str, bucket: str) -> dict[str, Any]:
        """{"etag": ..., "metadata": {...}} of one object."""
        return dict(self._script("head", key, bucket=bucket))

    def delete(self, key: str, bucket: str) -> None:
        self._script("delete", bucket, key)

    def _upload(
        self, key: str, data: bytes, metadata: dict[str, str], bucket: str, as_key: tuple[str, str]
    ) -> None:
        source = self.directory / "upload"
        source.write_bytes(data)
        credentials = {"STORE_ACCESS_KEY": as_key[0], "STORE_SECRET_KEY": as_key[1]}
        self._script("put", bucket, key, str(source), json.dumps(metadata), env=credentials)

    def _script(
        self, *args: str, bucket: str | None = None, env: dict[str, str] | None = None
    ) -> Any:
        full = {
            "PYTHONPATH": str(TESTS),
            "STORE_ENDPOINT": self.endpoint,
            "STORE_CA": str(self.ca),
            "STORE_REGION": self.region,
            "STORE_BUCKET": bucket or self.bucket or self.config_bucket,
            "STORE_ACCESS_KEY": self.access_key,
            "STORE_SECRET_KEY": self.secret_key,
            **(env or {}),
        }
        done = self.box.run([sys.executable, SCRIPT, *args], env=full, timeout=60)
        return json.loads(done.stdout)


def age_identity(path: Path) -> str:
    """A new age identity at `path`; its recipient (public key)."""
    subprocess.run(["age-keygen", "-o", str(path)], check=True, capture_output=True)
    return subprocess.run(
        ["age-keygen", "-y", str(path)], check=True, capture_output=True, text=True
    ).stdout.strip()


def age_decrypt(encrypted: Path, identity: Path) -> bytes | None:
    """The plaintext of `encrypted` with `identity`, None if that identity cannot open it."""
    done = subprocess.run(
        ["age", "-d", "-i", str(identity), str(encrypted)], capture_output=True, check=False
    )
    return done.stdout if done.returncode == 0 else None
