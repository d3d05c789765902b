"""The Debian root filesystem tools/build_rootfs.py caches: its path, or one line saying why not."""

from __future__ import annotations

from pathlib import Path

from support.config import tool

build_rootfs = tool("build_rootfs")


class DropletUnavailable(RuntimeError):
    """A droplet box cannot run here; the message is the one line a skipped test shows."""


def rootfs() -> Path:
    """The tree every droplet boots from (read-only, the overlay's lower layer)."""
    spec = build_rootfs.spec()
    if spec.built():
        return Path(spec.root)
    if spec.failure.exists():
        raise DropletUnavailable(
            f"the droplet box's rootfs could not be built: {spec.failure.read_text().strip()}"
        )
    raise DropletUnavailable(
        f"the droplet box's rootfs is not built yet ({spec.folder}); `make test` builds it"
    )


def packages() -> dict[str, str]:
    """Package -> version, as dpkg in the image reports them."""
    manifest = Path(build_rootfs.spec().folder) / build_rootfs.MANIFEST
    return dict(line.split(" ", 1) for line in manifest.read_text().splitlines() if line)
