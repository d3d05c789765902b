"""The mirror box serves the URLs bootstrap uses, over HTTPS from a lab CA, signed by the lab key.

One mirror per module, on the lab's router, with one `installer` box that
names every mirrored host at the mirror, trusts only the mirror's CA and
reaches nothing else (the router's leak guard stays at 0). In it, this
machine's apt, in a scratch configuration with the keyrings bootstrap's own
`fetch_keyring` downloads, runs `apt-get update` with signature checks on and
downloads each package; bootstrap's own `install_release_deb` checks each
GitHub release .deb against the release's checksums.txt. Each check has a
twin that fails: another key, a tampered .deb, a name the mirror does not
serve, a CA the installer does not trust, the mirror stopped.
"""

from __future__ import annotations

import hashlib
import shlex
import subprocess
from pathlib import Path

import pytest
from support.mirror.box import debian_sources
from support.mirror.build import contents
from support.mirror.debian import ScratchApt
from support.mirror.installer import MirrorRun, bootstrap_shell
from support.mirror.signing import ArchiveKey
from support.mirror.site import (
    CADDY_KEY_URL,
    CADDY_REPOSITORY,
    CADDY_SUITE,
    HEADSCALE_REPO,
    LITESTREAM_REPO,
    release_url,
    tailscale_keyring_url,
    tailscale_repository,
)

from homelab_tunnel.edge.versions import HEADSCALE_VERSION, LITESTREAM_VERSION

TAILSCALE_KEYRING = "tailscale-archive-keyring.gpg"
CADDY_KEYRING = "caddy-stable-archive-keyring.gpg"
DEBIAN_KEYRING = "lab-archive-keyring.gpg"


def shell(run: MirrorRun, script: str, folder: Path) -> subprocess.CompletedProcess[str]:
    """bash in the installer box with bootstrap's own helpers defined first."""
    gnupg = folder / "gnupg"
    gnupg.mkdir(mode=0o700, exist_ok=True)
    full = bootstrap_shell(str(folder / "status")) + "\n" + script
    return run.installer.run(["bash", "-c", full], env={"GNUPGHOME": str(gnupg)}, check=False)


def sources(keyrings: Path) -> str:
    """What bootstrap writes to sources.list.d (Tailscale's by os-release ID), and the edge's
    Debian line."""
    return (
        f"deb [signed-by={keyrings / TAILSCALE_KEYRING}] {tailscale_repository('debian')} "
        "trixie main\n"
        f"deb [signed-by={keyrings / CADDY_KEYRING}] {CADDY_REPOSITORY} {CADDY_SUITE} main\n"
        + debian_sources(str(keyrings / DEBIAN_KEYRING))
    )


def fetch_keyrings(run: MirrorRun, folder: Path) -> Path:
    """The keys as bootstrap fetches them (fetch_keyring, from the mirror), and the Debian one."""
    keyrings = folder / "keyrings"
    keyrings.mkdir()
    script = (
        f"fetch_keyring {tailscale_keyring_url('debian', 'trixie')} "
        f"{keyrings / TAILSCALE_KEYRING}\n"
        f"fetch_keyring {CADDY_KEY_URL} {keyrings / CADDY_KEYRING} dearmor\n"
    )
    done = shell(run, script, folder)
    assert done.returncode == 0, done.stderr
    (keyrings / DEBIAN_KEYRING).write_bytes(run.mirror.keyring(armor=False))
    return keyrings


def apt(run: MirrorRun, keyrings: Path, folder: Path) -> tuple[ScratchApt, Path]:
    scratch = ScratchApt(folder / "apt", sources=sources(keyrings))
    return scratch, folder / "apt"


def apt_get(run: MirrorRun, scratch: ScratchApt, *args: str, cwd: Path | None = None) -> str:
    argv = scratch.argv(*args)
    if cwd is not None:
        argv = ["sh", "-c", 'cd "$1" && shift && exec "$@"', "sh", str(cwd), *argv]
    done = run.installer.run(argv, check=False, timeout=180)
    return f"exit {done.returncode}\n{done.stdout}{done.stderr}"


@pytest.fixture(scope="module")
def updated(run: MirrorRun, tmp_path_factory: pytest.TempPathFactory) -> tuple[ScratchApt, str]:
    folder = tmp_path_factory.mktemp("apt-lab-key")
    scratch, _ = apt(run, fetch_keyrings(run, folder), folder)
    return scratch, apt_get(run, scratch, "update")


def test_apt_update_checks_every_repository_against_the_lab_key(
    run: MirrorRun, updated: tuple[ScratchApt, str]
) -> None:
    scratch, output = updated
    assert output.startswith("exit 0\n"), output
    assert "W:" not in output and "E:" not in output, output
    lists = {path.name for path in (scratch.directory / "lists").iterdir()}
    for release in ("pkgs.tailscale.com_stable_debian_dists_trixie_InRelease",
                    "dl.cloudsmith.io_public_caddy_stable_deb_debian_dists_any-version_InRelease",
                    "deb.debian.org_debian_dists_trixie_InRelease"):  # fmt: skip
        assert release in lists
    fetched = {(r["scheme"], r["host"], r["path"], r["status"]) for r in run.mirror.requests()}
    assert ("https", "pkgs.tailscale.com", "/stable/debian/dists/trixie/InRelease", 200) in fetched
    assert ("http", "deb.debian.org", "/debian/dists/trixie/InRelease", 200) in fetched


def test_apt_downloads_what_bootstrap_installs_as_served(
    run: MirrorRun, updated: tuple[ScratchApt, str], tmp_path: Path
) -> None:
    scratch, _ = updated
    wanted = ("tailscale", "caddy", "unattended-upgrades", "age", "iptables")
    output = apt_get(run, scratch, "download", *wanted, cwd=tmp_path)
    assert output.startswith("exit 0\n"), output
    got = {path.name.split("_")[0]: path for path in tmp_path.glob("*.deb")}
    assert set(got) == set(wanted)
    built = contents()
    assert got["tailscale"].read_bytes() == built.tailscale[0].read_bytes()  # the newest
    assert got["caddy"].read_bytes() == built.caddy.read_bytes()
    served = {path.name: path for path in built.debian}
    for name in ("unattended-upgrades", "age", "iptables"):
        assert got[name].read_bytes() == served[got[name].name].read_bytes()


def test_a_repository_signed_with_another_key_is_refused(run: MirrorRun, tmp_path: Path) -> None:
    stranger = ArchiveKey(tmp_path / "stranger")
    try:
        other = stranger.public(armor=False)
    finally:
        stranger.stop()
    keyrings = tmp_path / "keyrings"
    keyrings.mkdir()
    for name in (TAILSCALE_KEYRING, CADDY_KEYRING, DEBIAN_KEYRING):
        (keyrings / name).write_bytes(other)
    scratch, _ = apt(run, keyrings, tmp_path)
    output = apt_get(run, scratch, "update")
    assert not output.startswith("exit 0\n"), output
    assert "NO_PUBKEY" in output
    assert "is not signed" in output


def _install_release_deb(run: MirrorRun, url: str, deb: str, folder: Path) -> tuple[str, Path]:
    """bootstrap's install_release_deb with apt-get standing in: it keeps what it was given."""
    kept = folder / "installed.deb"
    script = (
        f'apt-get() {{ cp "${{@: -1}}" {shlex.quote(str(kept))}; }}\n'
        f"install_release_deb {shlex.quote(url)} {shlex.quote(deb)}\n"
    )
    done = shell(run, script, folder)
    return f"exit {done.returncode}\n{done.stdout}{done.stderr}", kept


@pytest.mark.parametrize(
    ("repo", "version", "deb"),
    [
        (HEADSCALE_REPO, HEADSCALE_VERSION, f"headscale_{HEADSCALE_VERSION}_linux_amd64.deb"),
        (HEADSCALE_REPO, "0.28.0", "headscale_0.28.0_linux_amd64.deb"),
        (HEADSCALE_REPO, "0.27.1", "headscale_0.27.1_linux_amd64.deb"),
        (LITESTREAM_REPO, LITESTREAM_VERSION, f"litestream-{LITESTREAM_VERSION}-linux-x86_64.deb"),
    ],
)
def test_a_release_deb_passes_bootstraps_checksum_check(
    run: MirrorRun, tmp_path: Path, repo: str, version: str, deb: str
) -> None:
    url = release_url(repo, version)
    output, kept = _install_release_deb(run, url, deb, tmp_path)
    assert output.startswith("exit 0\n"), output
    served = run.mirror.file(f"{url}/{deb}").read_bytes()
    assert kept.read_bytes() == served
    listed = run.mirror.file(f"{url}/checksums.txt").read_text()
    assert f"{hashlib.sha256(served).hexdigest()}  {deb}\n" in listed
    # As on GitHub: github.com answers with a redirect, the assets host with the file.
    path = f"/{repo}/releases/download/v{version}/{deb}"
    hits = [(r["host"], r["status"]) for r in run.mirror.requests() if r["path"] == path]
    assert ("github.com", 302) in hits
    assert ("release-assets.githubusercontent.com", 200) in hits


def test_a_tampered_release_deb_is_refused_and_never_installed(
    run: MirrorRun, tmp_path: Path
) -> None:
    url = release_url(HEADSCALE_REPO, HEADSCALE_VERSION)
    deb = f"headscale_{HEADSCALE_VERSION}_linux_amd64.deb"
    original = run.mirror.tamper(f"{url}/{deb}")
    try:
        output, kept = _install_release_deb(run, url, deb, tmp_path)
    finally:
        run.mirror.restore(f"{url}/{deb}", original)
    assert output.startswith("exit 1\n"), output
    assert f"FAILED: {deb} does not match the release's checksums.txt" in output
    assert not kept.exists()
    assert (tmp_path / "status").read_text().startswith("failed: ")


def curl(run: MirrorRun, *args: str) -> subprocess.CompletedProcess[str]:
    return run.installer.run(["curl", "-fsS", "-o", "/dev/null", "--max-time", "10", *args],
                             check=False)  # fmt: skip


def test_a_name_the_mirror_does_not_serve_gets_no_certificate(run: MirrorRun) -> None:
    served = curl(run, CADDY_KEY_URL)
    assert served.returncode == 0, served.stderr
    address = run.mirror.host.address
    other = curl(run, "--resolve", f"example.com:443:{address}", "https://example.com/")
    assert other.returncode == 35, other.stderr  # TLS handshake refused: unrecognized name


def test_the_installer_trusts_the_mirror_only_through_the_lab_ca(
    run: MirrorRun, tmp_path: Path
) -> None:
    assert curl(run, CADDY_KEY_URL).returncode == 0
    stranger = run.state.directory / "stranger-ca.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", tmp_path / "key", "-out", stranger, "-days", "1",
         "-subj", "/CN=stranger"],
        capture_output=True, check=True,
    )  # fmt: skip
    untrusted = curl(run, "--cacert", str(stranger), CADDY_KEY_URL)
    assert untrusted.returncode == 60, untrusted.stderr  # certificate not verified


def test_a_stopped_mirror_refuses_connections_until_it_starts_again(
    run: MirrorRun, tmp_path: Path
) -> None:
    url = tailscale_keyring_url("debian", "trixie")
    run.mirror.stop()
    try:
        down = curl(run, url)
        keyring = shell(run, f"fetch_keyring {url} {tmp_path / 'key.gpg'}", tmp_path)
    finally:
        run.mirror.start()
    assert down.returncode == 7, down.stderr  # connection refused
    assert keyring.returncode == 1
    assert f"FAILED: cannot download the signing key {url}" in keyring.stderr
    assert not (tmp_path / "key.gpg").exists()
    again = shell(run, f"fetch_keyring {url} {tmp_path / 'key.gpg'}", tmp_path)
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "key.gpg").read_bytes() == run.mirror.keyring(armor=False)
