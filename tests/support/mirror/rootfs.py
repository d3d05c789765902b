"""A throwaway Debian 13 root to install the mirror's packages into, postinst scripts and all.

The root filesystem is built once by mmdebstrap (minbase, plus what
bootstrap's step 2 runs before apt: curl, gpg, ca-certificates, and systemd as
the init) and cached. Each `ThrowawayRoot` lays a copy-on-write layer of its
own over it; every command runs chrooted into the merged tree, inside a
network namespace (a lab box's) and a private mount namespace, so its mounts
end with it and the cached tree is never written. No systemd runs in it:
maintainer scripts enable units (deb-systemd-helper) but start nothing, as in
any chroot. Starting them is the booted edge's part.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from support.mirror.cache import MirrorUnavailable, cached, digest, failure, folder

SUITE = "trixie"
VARIANT = "minbase"
INCLUDE = ("systemd", "systemd-sysv", "ca-certificates", "curl", "gpg")
ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
    "DEBIAN_FRONTEND": "noninteractive",
}


def _mmdebstrap_version() -> str:
    try:
        done = subprocess.run(
            ["mmdebstrap", "--version"], capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        raise MirrorUnavailable(
            f"mmdebstrap is not installed (Debian's mmdebstrap): {exc}"
        ) from exc
    return done.stdout.strip()


def _key() -> str:
    return digest([SUITE, VARIANT, *INCLUDE, _mmdebstrap_version()])


def rootfs() -> Path:
    """The cached root filesystem (built if missing: about 40 s)."""

    def build(staging: Path) -> None:
        done = subprocess.run(
            ["mmdebstrap", f"--variant={VARIANT}", f"--include={','.join(INCLUDE)}",
             "--components=main", SUITE, staging / "root"],
            capture_output=True, text=True, timeout=900, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            lines = [line for line in done.stderr.splitlines() if line.startswith("E:")]
            raise RuntimeError(f"mmdebstrap: {'; '.join(lines) or done.stderr.strip()[-300:]}")

    return cached("rootfs-trixie", _key(), build) / "root"


def built_rootfs() -> Path:
    """The root filesystem if `make test` built it; `MirrorUnavailable` saying why otherwise."""
    target = folder("rootfs-trixie", _key())
    if not target.is_dir():
        marker = failure(target)
        reason = marker.read_text().strip() if marker.exists() else "`make test` builds it"
        raise MirrorUnavailable(f"the trixie root filesystem is not built ({reason})")
    return target / "root"


# $1 the lower tree, $2 the layer directory, $3 the command for `sh -ec` in the chroot.
_ENTER = r"""
set -eu
lower="$1" layer="$2" command="$3"
root="$layer/merged"
mkdir -p "$layer/upper" "$layer/work" "$root"
layers="lowerdir=$lower,upperdir=$layer/upper,workdir=$layer/work"
mount -t overlay throwaway-root -o "$layers" "$root"
mount -t proc proc "$root/proc"
mount -t tmpfs -o mode=0755 throwaway-run "$root/run"
mount -t tmpfs -o mode=1777 throwaway-tmp "$root/tmp"
mount -t tmpfs -o mode=0755 throwaway-dev "$root/dev"
for node in null zero full random urandom tty; do
  touch "$root/dev/$node" && mount --bind "/dev/$node" "$root/dev/$node"
done
cp "$layer/hosts" "$root/etc/hosts"
cp "$layer/resolv.conf" "$root/etc/resolv.conf"
exec chroot "$root" /bin/sh -ec "$command"
"""


class ThrowawayRoot:
    """A copy-on-write layer over the cached root, entered inside network namespace `netns`."""

    def __init__(self, directory: Path, netns: str, hosts: str) -> None:
        self.lower = built_rootfs()
        self.layer = directory
        self.netns = netns
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "hosts").write_text(hosts)
        (directory / "resolv.conf").write_text("# names come from /etc/hosts\n")

    def run(
        self, command: str, *, check: bool = True, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        """`sh -ec command` in the root; with `check`, a failure raises with its output."""
        done = subprocess.run(
            ["nsenter", f"--net=/run/netns/{self.netns}", "--",
             "unshare", "--mount", "--propagation", "private", "--",
             "sh", "-c", _ENTER, "enter", self.lower, self.layer, command],
            capture_output=True, text=True, errors="replace", timeout=timeout, env=ENV,
            check=False,
        )  # fmt: skip
        if check and done.returncode != 0:
            raise AssertionError(
                f"in the throwaway root: {command}\nexit {done.returncode}\n"
                f"{done.stdout[-4000:]}{done.stderr[-4000:]}"
            )
        return done

    def file(self, inside: str) -> Path:
        """What the root changed at `inside` (its layer), readable after the commands ended."""
        return self.layer / "upper" / inside.lstrip("/")
