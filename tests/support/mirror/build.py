"""Everything the mirror serves, built or fetched once (`make test`: tools/build_packages.py).

    python tools/build_packages.py     # every .deb, Debian's part, the throwaway root

Warm, it only checks the cache keys (a few seconds: the binaries are hashed).
A part that cannot be built is reported in one line and its tests skip
saying why; nothing here stops `make test`.
"""

from __future__ import annotations

import functools
import time

from support.mirror import debian, packages, rootfs
from support.mirror.cache import MirrorUnavailable
from support.mirror.site import Contents

# What the edge installs from Debian itself: bootstrap's `apt-get install` of
# unattended-upgrades, nftables and conntrack (the forwarded ports), age when
# backups are on, and what Tailscale's package Depends on (iptables) and
# Recommends (iproute2) from Debian. apt adds whatever they pull in that the
# root filesystem lacks.
DEBIAN_PACKAGES = ("unattended-upgrades", "nftables", "conntrack", "age", "iptables", "iproute2")


@functools.cache
def contents() -> Contents:
    """Every .deb the mirror serves (built when missing); `MirrorUnavailable` says what is not."""
    status = rootfs.rootfs() / "var/lib/dpkg/status"
    headscale = []
    for release in packages.headscale_releases():
        deb = packages.headscale(release)
        headscale.append((release, deb.build(), packages.headscale_program(release)))
    litestream = packages.litestream()
    return Contents(
        tailscale=tuple(packages.tailscale(entry).build() for entry in packages.TAILSCALE_ENTRIES),
        caddy=packages.caddy().build(),
        litestream=litestream.build(),
        litestream_version=litestream.version,
        headscale=tuple(headscale),
        debian=tuple(sorted(debian.archive(DEBIAN_PACKAGES, status).glob("*.deb"))),
    )


def main() -> int:
    started = time.monotonic()
    try:
        built = contents()
    except MirrorUnavailable as exc:
        print(f"note: cannot build the package mirror: {exc}; its tests will skip")
        return 0
    count = 2 + len(built.tailscale) + len(built.headscale) + len(built.debian)
    print(f"package mirror: {count} packages ready in {time.monotonic() - started:.0f}s")
    return 0
