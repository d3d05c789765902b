"""Build the droplet box's Debian root filesystem (tools/rootfs.toml) once, outside the clone.

mmdebstrap (as root) builds into a staging folder that replaces nothing until
it is complete, then is renamed to `debian-<suite>-<key>`, the key hashing the
whole spec: a fresh clone on the same machine reuses it, and a changed package
list builds anew beside it. A failure leaves `FAILED` beside the cache folder
with mmdebstrap's last line, which the tests quote when they skip; nothing
else stops `make test`. A lock keeps two checkouts from building at once.

    python tools/build_rootfs.py
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import asdict, dataclass
from pathlib import Path

SPEC = Path(__file__).resolve().parent / "rootfs.toml"
BUILD_TIMEOUT = 15 * 60
# What the tests read to know what the image holds (dpkg-query's view of it).
MANIFEST = "packages.txt"


@dataclass(frozen=True)
class Rootfs:
    suite: str
    variant: str
    mirror: str
    packages: tuple[str, ...]
    customize: tuple[str, ...]

    @property
    def key(self) -> str:
        canonical = json.dumps(
            {
                "suite": self.suite,
                "variant": self.variant,
                "mirror": self.mirror,
                "packages": sorted(self.packages),
                "customize": list(self.customize),
            },
            sort_keys=True,
        )
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]

    @property
    def folder(self) -> Path:
        return cache_root() / f"debian-{self.suite}-{self.key}"

    @property
    def root(self) -> Path:
        """The tree itself: the lower layer every droplet boots from."""
        return self.folder / "root"

    @property
    def failure(self) -> Path:
        return self.folder.with_name(self.folder.name + ".FAILED")

    def built(self) -> bool:
        return (self.folder / MANIFEST).is_file() and (self.root / "sbin/init").exists()

    def command(self, target: Path) -> list[str]:
        return [
            "mmdebstrap",
            "--mode=root",
            "--format=directory",
            f"--variant={self.variant}",
            f"--include={','.join(self.packages)}",
            *(f"--customize-hook={hook}" for hook in self.customize),
            self.suite,
            str(target),
            self.mirror,
        ]


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "homelab-tunnel" / "rootfs"


def spec() -> Rootfs:
    document = tomllib.loads(SPEC.read_text(encoding="utf-8"))
    return Rootfs(
        suite=document["suite"],
        variant=document["variant"],
        mirror=document["mirror"],
        packages=tuple(document["packages"]),
        customize=tuple(document["customize"]),
    )


def build(rootfs: Rootfs) -> None:
    """mmdebstrap into a staging folder; renamed into place only when complete."""
    staging = Path(tempfile.mkdtemp(prefix=f".{rootfs.folder.name}.", dir=rootfs.folder.parent))
    try:
        done = subprocess.run(
            rootfs.command(staging / "root"),
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        (staging / "build.log").write_text(done.stdout + done.stderr)
        if done.returncode != 0:
            lines = [line for line in done.stderr.splitlines() if line.strip()]
            raise RuntimeError(lines[-1] if lines else f"mmdebstrap exited {done.returncode}")
        listing = subprocess.run(
            ["chroot", str(staging / "root"), "dpkg-query", "-W", "-f=${Package} ${Version}\n"],
            capture_output=True,
            text=True,
            check=True,
        )
        (staging / MANIFEST).write_text(listing.stdout)
        (staging / "spec.json").write_text(json.dumps(asdict(rootfs), indent=1))
        shutil.rmtree(rootfs.folder, ignore_errors=True)
        staging.rename(rootfs.folder)
        rootfs.failure.unlink(missing_ok=True)
    except (RuntimeError, subprocess.SubprocessError, OSError) as exc:
        rootfs.failure.write_text(f"debian {rootfs.suite} rootfs: {exc}\n")
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def main() -> int:
    rootfs = spec()
    if os.geteuid() != 0:
        print("note: building the droplet box's root filesystem needs root; its tests will skip")
        return 0
    if shutil.which("mmdebstrap") is None:
        print("note: no mmdebstrap (Debian: mmdebstrap); the droplet box's tests will skip")
        return 0
    cache_root().mkdir(parents=True, exist_ok=True)
    with (cache_root() / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if rootfs.built():
            return 0
        start = time.monotonic()
        print(f"building Debian {rootfs.suite} for the droplet box ...", flush=True)
        try:
            build(rootfs)
        except (RuntimeError, subprocess.SubprocessError, OSError) as exc:
            print(
                f"note: cannot build the droplet box's root filesystem: {exc}; its tests will skip"
            )
            return 0
    print(f"built Debian {rootfs.suite} in {time.monotonic() - start:.0f}s -> {rootfs.folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
