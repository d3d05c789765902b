"""Debian 13 (trixie) packages, fetched with this machine's apt in a scratch configuration.

Two uses: the part of Debian's archive the edge installs from (what bootstrap
asks apt for, and what our .debs depend on, with everything they pull in that
the root filesystem lacks, Recommends included since bootstrap does not turn
them off), and the packaging Caddy's .deb borrows from Debian's `caddy`. The
scratch apt reads only its own sources, lists, status and cache: nothing of
this machine's apt configuration, state or trusted keys is read or changed,
and Debian's archive signature is checked against debian-archive-keyring.
Whatever trixie held when this first ran is cached until the inputs change.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from support.mirror.cache import cached, digest, file_digest

SUITE = "trixie"
ARCHIVE = "http://deb.debian.org/debian"
KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")


class ScratchApt:
    """apt-get with every directory of its own under `directory`, for trixie on amd64."""

    def __init__(
        self, directory: Path, status: Path | None = None, sources: str | None = None
    ) -> None:
        """`sources`: sources.list lines (default: Debian's trixie, checked with Debian's key)."""
        self.directory = directory
        for sub in ("lists/partial", "archives/partial", "cache", "preferences.d"):
            (directory / sub).mkdir(parents=True, exist_ok=True)
        if status is None:
            status = directory / "status"
            status.touch()
        self.status = status
        if sources is None:
            sources = f"deb [signed-by={KEYRING}] {ARCHIVE} {SUITE} main\n"
        (directory / "sources.list").write_text(sources)

    def options(self) -> list[str]:
        d = self.directory
        settings: dict[str, object] = {
            "Dir::Etc::Parts": "/nonexistent",  # none of this machine's apt.conf.d
            "Dir::Etc::SourceList": d / "sources.list",
            "Dir::Etc::SourceParts": "/nonexistent",
            "Dir::Etc::Preferences": d / "preferences",
            "Dir::Etc::PreferencesParts": d / "preferences.d",
            "Dir::State::Lists": d / "lists",
            "Dir::State::Status": self.status,
            "Dir::Cache": d / "cache",
            "Dir::Cache::Archives": d / "archives",
            "APT::Architecture": "amd64",
            "APT::Architectures::": "amd64",
            "Debug::NoLocking": "1",
            "APT::Sandbox::User": "root",  # the scratch folders belong to root
        }
        return [arg for key, value in settings.items() for arg in ("-o", f"{key}={value}")]

    def argv(self, *args: str) -> list[str]:
        return ["apt-get", "-q", *self.options(), *args]

    def run(self, *args: str, cwd: Path | None = None) -> str:
        done = subprocess.run(
            self.argv(*args),
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"},
        )
        if done.returncode != 0:
            errors = [line for line in done.stdout.splitlines() + done.stderr.splitlines()
                      if line.startswith(("E:", "W:"))]  # fmt: skip
            raise RuntimeError(f"apt-get {args[0]}: {'; '.join(errors) or done.stderr.strip()}")
        return done.stdout


def packaging(name: str) -> Path:
    """Debian's package `name` unpacked (`dpkg-deb -R`: its files, and DEBIAN/ for its scripts)."""

    def fetch(staging: Path) -> None:
        with tempfile.TemporaryDirectory(dir=staging.parent) as scratch:
            apt = ScratchApt(Path(scratch))
            apt.run("update")
            apt.run("download", name, cwd=Path(scratch))
            (deb,) = Path(scratch).glob(f"{name}_*.deb")
            subprocess.run(["dpkg-deb", "-R", deb, staging / "unpacked"], check=True, timeout=120)

    return cached(f"debian-{name}", digest([ARCHIVE, SUITE, name]), fetch) / "unpacked"


def archive(names: Sequence[str], status: Path) -> Path:
    """A folder of .debs: `names` and everything they pull in that `status` (a dpkg status file,
    the root filesystem's) does not list as installed."""

    def fetch(staging: Path) -> None:
        with tempfile.TemporaryDirectory(dir=staging.parent) as scratch:
            apt = ScratchApt(Path(scratch), status)
            apt.run("update")
            apt.run("install", "--download-only", "-y", *names)
            for deb in (Path(scratch) / "archives").glob("*.deb"):
                deb.rename(staging / deb.name)

    key = digest([ARCHIVE, SUITE, *sorted(names), file_digest(status)])
    return cached("debian-archive", key, fetch)
