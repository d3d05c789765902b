"""Installing from the mirror into a throwaway Debian 13 root: the maintainer scripts run for real.

The root (mmdebstrap's trixie, cached) sits in the mirror's `installer` box,
so it reaches the mirror and nothing else. It trusts the mirror's CA in place
of the public roots and the lab key for its Debian sources, as the booted
edge will. Then bootstrap's step 2 and 5, with bootstrap's own functions and
apt options: the keys fetched, `apt-get update` with signatures checked,
`apt-get install tailscale caddy unattended-upgrades age`, and the Headscale
and Litestream release .debs through `install_release_deb` with the real
apt-get. trixie's own apt (3.0, which checks signatures with sqv) does all of
it. No systemd runs in a chroot, so the postinst scripts create users and
enable units but start nothing (they check /run/systemd/system): starting is
the booted edge's proof.
"""

from __future__ import annotations

import shlex
import subprocess

import pytest
from support.binaries import build_binaries
from support.mirror.box import debian_sources
from support.mirror.build import contents
from support.mirror.cache import MirrorUnavailable
from support.mirror.installer import TRUST_STORE, MirrorRun, bootstrap_shell
from support.mirror.rootfs import ThrowawayRoot, built_rootfs
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
from homelab_tunnel.payload import fixed_files

# Where the booted edge's root filesystem keeps the lab key for its Debian sources.
DEBIAN_KEYRING = "/usr/share/keyrings/homelab-tunnel-lab-archive.gpg"
KEYRINGS = "/usr/share/keyrings"


@pytest.fixture(scope="module", autouse=True)
def _root_filesystem() -> None:
    try:
        built_rootfs()
    except MirrorUnavailable as exc:
        pytest.skip(f"package mirror: {exc}")


def new_root(run: MirrorRun, name: str) -> ThrowawayRoot:
    """A fresh layer, set up as the booted edge's root will be: the lab CA as its only root,
    Debian's sources on the mirror under the lab key, bootstrap's helpers in /root."""
    root = ThrowawayRoot(run.state.directory / name, run.installer.netns, run.hosts)
    ca = shlex.quote(run.mirror.ca.read_text())
    key = run.mirror.keyring(armor=True).decode()
    helpers = bootstrap_shell("/var/lib/homelab-tunnel/bootstrap-status")
    root.run(
        f"printf '%s' {ca} > {TRUST_STORE}\n"
        f"printf '%s' {shlex.quote(key)} | gpg --batch --dearmor > {DEBIAN_KEYRING}\n"
        "rm -f /etc/apt/sources.list /etc/apt/sources.list.d/*\n"
        f"printf '%s' {shlex.quote(debian_sources(DEBIAN_KEYRING))} > /etc/apt/sources.list\n"
        f"printf '%s\\n' {shlex.quote(helpers)} > /root/bootstrap-helpers.sh\n"
    )
    return root


def in_bootstrap(
    root: ThrowawayRoot, script: str, *, check: bool = True, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """`script` in bash after bootstrap's helpers, in the root."""
    command = f". /root/bootstrap-helpers.sh\n{script}"
    return root.run(f"exec bash -c {shlex.quote(command)}", check=check, timeout=timeout)


TAILSCALE = tailscale_repository("debian")
STEP_2 = f"""
fetch_keyring {tailscale_keyring_url("debian", "trixie")} {KEYRINGS}/tailscale-archive-keyring.gpg
fetch_keyring {CADDY_KEY_URL} {KEYRINGS}/caddy-stable-archive-keyring.gpg dearmor
cat >/etc/apt/sources.list.d/tailscale.list <<EOF
deb [signed-by={KEYRINGS}/tailscale-archive-keyring.gpg] {TAILSCALE} trixie main
EOF
cat >/etc/apt/sources.list.d/caddy-stable.list <<EOF
deb [signed-by={KEYRINGS}/caddy-stable-archive-keyring.gpg] {CADDY_REPOSITORY} {CADDY_SUITE} main
EOF
apt-get update -q -o DPkg::Lock::Timeout=600
DEBIAN_FRONTEND=noninteractive apt-get install "${{APT_OPTS[@]}}" tailscale caddy \\
  unattended-upgrades age
"""
STEP_5 = f"""
install_release_deb {release_url(HEADSCALE_REPO, HEADSCALE_VERSION)} \\
  headscale_{HEADSCALE_VERSION}_linux_amd64.deb
install_release_deb {release_url(LITESTREAM_REPO, LITESTREAM_VERSION)} \\
  litestream-{LITESTREAM_VERSION}-linux-x86_64.deb
"""


@pytest.fixture(scope="module")
def installed(run: MirrorRun) -> ThrowawayRoot:
    root = new_root(run, "installed")
    in_bootstrap(root, STEP_2 + STEP_5, timeout=600)
    return root


def query(root: ThrowawayRoot, command: str) -> str:
    return root.run(command).stdout


def test_every_package_installs_at_the_version_bootstrap_checks(installed: ThrowawayRoot) -> None:
    versions = dict(
        line.split(" ", 1)
        for line in query(installed, "dpkg-query -W -f '${Package} ${Version}\\n'").splitlines()
    )
    assert versions["tailscale"] == "1.102.3"
    assert versions["headscale"] == HEADSCALE_VERSION
    assert versions["litestream"] == LITESTREAM_VERSION
    assert versions["caddy"] == contents().caddy.name.split("_")[1]
    assert "unattended-upgrades" in versions
    assert "age" in versions
    assert "iptables" in versions  # Tailscale's Depends, from Debian's part of the mirror


def test_the_postinst_scripts_made_their_system_users(installed: ThrowawayRoot) -> None:
    for user, home in (("headscale", "/var/lib/headscale"), ("caddy", "/var/lib/caddy")):
        entry = query(installed, f"getent passwd {user}").strip().split(":")
        assert entry[5:] == [home, "/usr/sbin/nologin"], entry
        assert int(entry[2]) < 1000, f"{user} is not a system user: {entry}"


def test_the_postinst_scripts_enabled_the_services(installed: ThrowawayRoot) -> None:
    wants = query(installed, "ls /etc/systemd/system/multi-user.target.wants").split()
    for unit in ("tailscaled.service", "headscale.service", "caddy.service"):
        assert unit in wants
    # Litestream's package ships a unit but no scripts: nothing enables it (the edge runs its
    # own homelab-tunnel-litestream.service).
    assert "litestream.service" not in wants


def test_config_files_and_programs_are_where_the_units_expect_them(
    installed: ThrowawayRoot,
) -> None:
    query(installed, "test -s /etc/default/tailscaled && test -s /etc/headscale/config.yaml")
    query(installed, "test -s /etc/caddy/Caddyfile && test -s /etc/litestream.yml")
    assert HEADSCALE_VERSION in query(installed, "headscale version")
    assert "1.102.3" in query(installed, "tailscale version")
    assert query(installed, "caddy version").startswith("v")
    assert LITESTREAM_VERSION in query(installed, "litestream version")


def test_apt_fetched_everything_from_the_mirror_over_tls(
    run: MirrorRun, installed: ThrowawayRoot
) -> None:
    fetched = run.mirror.requests()
    assert {r["host"] for r in fetched} >= {"pkgs.tailscale.com", "dl.cloudsmith.io",
                                            "github.com", "deb.debian.org"}  # fmt: skip
    debs = [r for r in fetched if r["path"].endswith(".deb") and r["status"] == 200]
    names = {r["path"].rsplit("/", 1)[1].split("_")[0] for r in debs}
    assert {"tailscale", "caddy", "unattended-upgrades", "age", "iptables"} <= names
    assert all(r["scheme"] == "https" for r in fetched if r["host"] != "deb.debian.org")


# What user_data writes for unattended-upgrades, as it ships.
(UPGRADES,) = [file for file in fixed_files() if file.path.endswith("52homelab-tunnel-upgrades")]
OLD_TAILSCALE = build_binaries.programs()["tailscale-old"].version.removeprefix("v")


def unattended_upgrade_from_old_tailscale(root: ThrowawayRoot, *, our_origins: bool) -> str:
    """Tailscale put back to the release Headscale refuses, then one unattended-upgrade run
    (with or without user_data's origins); the Tailscale version it leaves."""
    origins = (
        f"printf '%s' {shlex.quote(UPGRADES.content)} > {UPGRADES.path}"
        if our_origins
        else f"rm -f {UPGRADES.path}"
    )
    done = root.run(
        f"apt-get install -y -q --allow-downgrades tailscale={OLD_TAILSCALE}\n"
        f"test \"$(dpkg-query -W -f '${{Version}}' tailscale)\" = {OLD_TAILSCALE}\n"
        f"{origins}\n"
        "unattended-upgrade\n"
        "dpkg-query -W -f '${Version}\\n' tailscale\n",
        timeout=300,
    )
    return done.stdout.splitlines()[-1]


def test_unattended_upgrades_alone_leave_an_old_tailscale(installed: ThrowawayRoot) -> None:
    """Debian's own configuration upgrades from Debian only: the twin of the next test."""
    assert unattended_upgrade_from_old_tailscale(installed, our_origins=False) == OLD_TAILSCALE


def test_the_edges_origins_let_unattended_upgrades_replace_an_old_tailscale(
    installed: ThrowawayRoot,
) -> None:
    """The cure for the seed incident: user_data's Origins-Pattern (site=pkgs.tailscale.com)
    matches Tailscale's repository, so the refused 1.78 client is upgraded without anyone."""
    assert unattended_upgrade_from_old_tailscale(installed, our_origins=True) == "1.102.3"


def test_a_tampered_headscale_deb_is_refused_before_apt_sees_it(run: MirrorRun) -> None:
    root = new_root(run, "tampered")
    url = release_url(HEADSCALE_REPO, HEADSCALE_VERSION)
    deb = f"headscale_{HEADSCALE_VERSION}_linux_amd64.deb"
    original = run.mirror.tamper(f"{url}/{deb}")
    try:
        done = in_bootstrap(root, f"install_release_deb {url} {deb}", check=False)
    finally:
        run.mirror.restore(f"{url}/{deb}", original)
    assert done.returncode == 1
    assert f"{deb} does not match the release's checksums.txt" in done.stderr
    status = root.run("dpkg-query -W headscale", check=False)
    assert status.returncode != 0  # never installed
    assert root.file("/var/lib/homelab-tunnel/bootstrap-status").read_text().startswith("failed:")
