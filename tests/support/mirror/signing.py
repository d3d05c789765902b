"""The lab's archive key: an OpenPGP key made per mirror with Debian's gpg, in a keyring of its own.

It signs every repository's Release (InRelease, Release.gpg) in place of
Tailscale's, Cloudsmith's and Debian's keys, and is served where bootstrap
downloads each project's key: binary for Tailscale's `.noarmor.gpg`, armored
for Cloudsmith's `gpg.key`. Ed25519, which gpgv and trixie's sqv both accept.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}


class ArchiveKey:
    """A signing key living in `home` (a GNUPGHOME nothing else uses)."""

    def __init__(self, home: Path, name: str = "homelab-tunnel lab archive") -> None:
        self.home = home
        home.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._gpg(
            "--quick-generate-key", f"{name} <archive@lab.invalid>", "ed25519", "sign", "never"
        )
        listing = self._gpg("--with-colons", "--list-secret-keys").decode()
        self.fingerprint = next(
            line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:")
        )

    def _gpg(self, *args: str | Path) -> bytes:
        done = subprocess.run(
            ["gpg", "--homedir", self.home, "--batch", "--quiet", "--pinentry-mode", "loopback",
             "--passphrase", "", *args],
            capture_output=True, env=ENV, timeout=60, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"gpg {args[0]}: {done.stderr.decode(errors='replace').strip()}")
        return done.stdout

    def public(self, *, armor: bool) -> bytes:
        return self._gpg(*(["--armor"] if armor else []), "--export", self.fingerprint)

    def sign_release(self, release: Path) -> None:
        """InRelease (clear-signed) and Release.gpg (detached) beside `release`, as archives do."""
        user = ("--local-user", self.fingerprint, "--digest-algo", "SHA512")
        self._gpg(*user, "--yes", "--clearsign", "-o", release.with_name("InRelease"), release)
        self._gpg(*user, "--yes", "--armor", "--detach-sign", "-o",
                  release.with_name("Release.gpg"), release)  # fmt: skip

    def stop(self) -> None:
        """End the gpg-agent this keyring started (it would outlive the run)."""
        subprocess.run(
            ["gpgconf", "--homedir", self.home, "--kill", "all"],
            capture_output=True, env=ENV, timeout=30, check=False,
        )  # fmt: skip
