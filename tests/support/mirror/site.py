"""What the mirror serves: every URL bootstrap.sh fetches, as files under <site>/<host>/<path>.

    https://pkgs.tailscale.com/stable/<ID>/<codename>.noarmor.gpg     the key, binary
    https://pkgs.tailscale.com/stable/<ID> <codename> main            apt repository
    https://dl.cloudsmith.io/public/caddy/stable/gpg.key              the key, armored
    https://dl.cloudsmith.io/public/caddy/stable/deb/debian any-version main
    https://github.com/<owner>/<repo>/releases/download/v<V>/<asset> (302 to the assets host,
                                                                      as GitHub answers)
    http://deb.debian.org/debian trixie main                          Debian, the part the edge
                                                                      installs

Tailscale's layout is served for each (os-release ID, codename) in
DISTRIBUTIONS: debian/trixie for the booted Debian edge, ubuntu/noble for
what a droplet runs. Every Release is signed with the run's lab key
(signing.py), Packages and Release are written here (no apt-ftparchive). The
.debs are hard links to the cached builds, so a run can tamper with its copy
without touching the cache.
"""

from __future__ import annotations

import email.utils
import gzip
import hashlib
import os
import re
import shutil
import subprocess
import time
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from support.mirror import debian
from support.mirror.signing import ArchiveKey

TAILSCALE_HOST = "pkgs.tailscale.com"
CADDY_HOST = "dl.cloudsmith.io"
GITHUB_HOST = "github.com"
# Where GitHub redirects a release download (curl -L follows it, as bootstrap's does).
ASSETS_HOST = "release-assets.githubusercontent.com"
DEBIAN_HOST = "deb.debian.org"
HOSTS = (TAILSCALE_HOST, CADDY_HOST, GITHUB_HOST, ASSETS_HOST, DEBIAN_HOST)
# Served over plain HTTP as well, as Debian's mirrors are (the signature is what apt trusts).
PLAIN_HOSTS = (DEBIAN_HOST,)
REDIRECTS = {GITHUB_HOST: ASSETS_HOST}

DISTRIBUTIONS = (("debian", "trixie"), ("ubuntu", "noble"))
TAILSCALE = f"https://{TAILSCALE_HOST}/stable"
CADDY = f"https://{CADDY_HOST}/public/caddy/stable"
CADDY_KEY_URL = f"{CADDY}/gpg.key"
CADDY_REPOSITORY = f"{CADDY}/deb/debian"
CADDY_SUITE = "any-version"
HEADSCALE_REPO = "juanfont/headscale"
LITESTREAM_REPO = "benbjohnson/litestream"
# The edge's own Debian sources name this archive, signed by the lab key instead of Debian's.
DEBIAN_ARCHIVE = debian.ARCHIVE
DEBIAN_SUITE = debian.SUITE


def tailscale_keyring_url(distribution: str, codename: str) -> str:
    return f"{TAILSCALE}/{distribution}/{codename}.noarmor.gpg"


def tailscale_repository(distribution: str) -> str:
    return f"{TAILSCALE}/{distribution}"


def release_url(repo: str, version: str) -> str:
    """The folder of a GitHub release's assets (bootstrap adds /<asset> and /checksums.txt)."""
    return f"https://{GITHUB_HOST}/{repo}/releases/download/v{version}"


def local_path(site: Path, url: str) -> Path:
    """The file behind `url` (a github.com URL: the file it redirects to)."""
    _, _, rest = url.partition("://")
    host, _, path = rest.partition("/")
    host = REDIRECTS.get(host, host)
    return site / host / path


def _link(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def _sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


@dataclass(frozen=True)
class Repository:
    """One apt repository (one suite, component main, amd64) at `base`."""

    base: Path
    codename: str
    origin: str
    suite: str = ""

    def write(self, debs: Iterable[Path], pool: str, key: ArchiveKey) -> None:
        """Debs into `pool` (a folder under base), the Packages index, a signed Release."""
        stanzas = []
        for deb in sorted(debs, key=lambda path: path.name):
            control = subprocess.run(
                ["dpkg-deb", "-f", deb], capture_output=True, text=True, check=True, timeout=60
            ).stdout
            filename = f"{pool}/{_pool_folder(control)}{_pool_name(deb.name)}"
            _link(deb, self.base / filename)
            data = deb.read_bytes()
            stanzas.append(
                control.rstrip("\n") + f"\nFilename: {filename}\nSize: {len(data)}\n"
                f"MD5sum: {hashlib.md5(data).hexdigest()}\n"
                f"SHA256: {hashlib.sha256(data).hexdigest()}\n"
            )
        index = "\n".join(stanzas).encode()
        dists = self.base / "dists" / self.codename
        packages = dists / "main/binary-amd64/Packages"
        packages.parent.mkdir(parents=True, exist_ok=True)
        packages.write_bytes(index)
        packages.with_name("Packages.gz").write_bytes(gzip.compress(index, mtime=0))
        self._release(dists, key)

    def _release(self, dists: Path, key: ArchiveKey) -> None:
        files = sorted(path for path in dists.rglob("*") if path.is_file())
        lines = [
            f"Origin: {self.origin}",
            f"Label: {self.origin}",
            f"Suite: {self.suite or self.codename}",
            f"Codename: {self.codename}",
            # A minute back: apt refuses a Release dated in the future.
            f"Date: {email.utils.formatdate(time.time() - 60, usegmt=True)}",
            "Architectures: amd64",
            "Components: main",
        ]
        for field, algorithm in (("MD5Sum", "md5"), ("SHA256", "sha256")):
            lines.append(f"{field}:")
            for path in files:
                data = path.read_bytes()
                hashed = hashlib.new(algorithm, data).hexdigest()
                lines.append(f" {hashed} {len(data):>8} {path.relative_to(dists)}")
        release = dists / "Release"
        release.write_text("\n".join(lines) + "\n")
        key.sign_release(release)


def _pool_name(name: str) -> str:
    """apt saves libbpf1_1:1.5.0-3 as libbpf1_1%3a1.5.0-3_amd64.deb; the pool has no epoch."""
    return re.sub(r"_\d+:", "_", urllib.parse.unquote(name))


def _pool_folder(control: str) -> str:
    """Debian's pool/<prefix>/<source>/ for a package ("libc6" -> "libc/glibc/")."""
    fields = dict(
        line.split(": ", 1) for line in control.splitlines() if ": " in line and line[0] != " "
    )
    source = fields.get("Source", fields["Package"]).split(" ")[0]
    prefix = source[:4] if source.startswith("lib") else source[0]
    return f"{prefix}/{source}/"


@dataclass(frozen=True)
class Contents:
    """What goes on the site: our .debs and Debian's."""

    tailscale: tuple[Path, ...]  # the current release first
    caddy: Path
    litestream: Path
    headscale: tuple[tuple[str, Path, Path], ...]  # (version, .deb, the raw binary asset)
    litestream_version: str
    debian: tuple[Path, ...]


def write_site(site: Path, contents: Contents, key: ArchiveKey) -> None:
    """Every file of the mirror under `site` (a new folder), signed with `key`."""
    binary_key, armored_key = key.public(armor=False), key.public(armor=True)
    for distribution, codename in DISTRIBUTIONS:
        base = local_path(site, tailscale_repository(distribution))
        Repository(base, codename, "Tailscale").write(contents.tailscale, "pool", key)
        keyring = local_path(site, tailscale_keyring_url(distribution, codename))
        keyring.write_bytes(binary_key)
    Repository(local_path(site, CADDY_REPOSITORY), CADDY_SUITE, "caddy").write(
        [contents.caddy], f"pool/{CADDY_SUITE}/main", key
    )
    local_path(site, CADDY_KEY_URL).write_bytes(armored_key)
    Repository(local_path(site, DEBIAN_ARCHIVE), DEBIAN_SUITE, "Debian", suite="stable").write(
        contents.debian, "pool/main", key
    )
    for version, deb, program in contents.headscale:
        # GoReleaser's `binary` archive format: the bare program, named like the archive.
        assets = {deb.name: deb, f"headscale_{version}_linux_amd64": program}
        _github_release(site, HEADSCALE_REPO, version, assets)
    litestream = {contents.litestream.name: contents.litestream}
    _github_release(site, LITESTREAM_REPO, contents.litestream_version, litestream)


def _github_release(site: Path, repo: str, version: str, assets: dict[str, Path]) -> None:
    """The assets and their checksums.txt, as GoReleaser writes it (`<sha256>  <name>`)."""
    folder = local_path(site, release_url(repo, version))
    for name, asset in assets.items():
        _link(asset, folder / name)
    sums = "".join(f"{_sha256(folder / name)}  {name}\n" for name in sorted(assets))
    (folder / "checksums.txt").write_text(sums)
