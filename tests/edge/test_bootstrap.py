"""bootstrap.sh in a sandbox: a scratch root tree and recording fakes on PATH.

What it proves: the first run does every step in order, the second run
changes nothing, and each refusal (no volume, bad checksum, reserved IP never
active, a Headscale that skips a minor release) stops with one clear line
before anything unsafe happens. The edge's S3 client talks to moto on
127.0.0.1 (backup.env is pointed there); Litestream and age are fakes.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest
from support.bootstrap_sandbox import EDGE_SECRET, Sandbox, make_sandbox
from support.config import ROOT, config_with
from support.fake_system import AGE_HEADER
from support.headscale_db import shaped_database
from support.moto_s3 import S3Server
from support.units import install_package_units, needs_systemd_analyze, verify

from homelab_tunnel.config import TunnelConfig
from homelab_tunnel.edge import s3
from homelab_tunnel.edge.derive import sign
from homelab_tunnel.edge.seal import digest
from homelab_tunnel.payload import BOOTSTRAP_STEPS, edge_config_object
from homelab_tunnel.render.user_data import CONF

# Calls that change a machine. A second run must make none of them.
MUTATING = {
    "mkfs.ext4": None,
    "mount": None,
    "gpg": None,
    "apt-get": None,
    "systemctl": {"enable", "start", "restart", "stop", "daemon-reload", "try-reload-or-restart"},
    "update-ca-certificates": None,
    "headscale": {"create"},
    "tailscale": {"up"},
    "litestream": {"restore"},
}


def _mutations(calls: list[list[str]]) -> list[list[str]]:
    found = []
    for name, *args in calls:
        if name not in MUTATING:
            continue
        verbs = MUTATING[name]
        if verbs is None or verbs & set(args):
            found.append([name, *args])
    return found


@pytest.fixture
def sandbox(tmp_path: Path, example_config: TunnelConfig, s3_server: S3Server) -> Iterator[Sandbox]:
    with make_sandbox(tmp_path, example_config, s3=s3_server) as made:
        yield made


def test_first_run_brings_the_edge_up_and_says_so(sandbox: Sandbox) -> None:
    result = sandbox.run()
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert [step for step in BOOTSTRAP_STEPS if sandbox.step(step)] == list(BOOTSTRAP_STEPS)
    logged = [line.split(" ")[1].rstrip(":") for line in lines]
    assert [name for name in logged if name in BOOTSTRAP_STEPS] == list(BOOTSTRAP_STEPS)
    assert lines[-1].startswith("homelab-tunnel: edge ready: homelab-edge on 198.51.100.7")
    machine = sandbox.machine()
    assert machine["packages"] == {
        "tailscale": "1.90.2",
        "caddy": "2.11.7",
        "unattended-upgrades": "1.0",
        "nftables": "1.0",
        "conntrack": "1.0",
        "age": "1.0",
        "litestream": "0.5.18",
        "headscale": "0.29.2",
    }
    assert set(machine["active"]) >= {
        "headscale",
        "caddy",
        "tailscaled",
        "homelab-tunnel-health.timer",
    }
    assert machine["logged_in"] is True


def test_state_dirs_are_bind_mounted_from_the_volume(
    sandbox: Sandbox, example_config: TunnelConfig
) -> None:
    assert sandbox.run().returncode == 0
    root = str(sandbox.root)
    volume = f"{root}/mnt/{example_config.volume_name}"
    mounts = sandbox.machine()["mounts"]
    assert mounts == {
        volume: f"{root}/dev/disk/by-id/scsi-0DO_Volume_homelab-edge-state",
        f"{root}/var/lib/headscale": f"{volume}/headscale-lib",
        f"{root}/etc/headscale": f"{volume}/headscale-etc",
        f"{root}/var/lib/caddy": f"{volume}/caddy",
        f"{root}/var/lib/tailscale": f"{volume}/tailscale",
        f"{root}/var/lib/homelab-tunnel/config": f"{volume}/config",
    }
    fstab = (sandbox.root / "etc/fstab").read_text().splitlines()
    assert len(fstab) == 6
    assert all("nofail" in line or "x-systemd.requires-mounts-for" in line for line in fstab)


def test_second_run_changes_nothing(sandbox: Sandbox) -> None:
    assert sandbox.run().returncode == 0
    before = sandbox.tree()
    machine_before = sandbox.machine()
    sandbox.reset_calls()
    second = sandbox.run()
    assert second.returncode == 0, second.stdout + second.stderr
    assert _mutations(sandbox.calls()) == []
    assert sandbox.tree() == before
    assert sandbox.machine()["mounts"] == machine_before["mounts"]
    assert second.stdout.splitlines()[-1].startswith("homelab-tunnel: edge ready")


def test_existing_filesystem_is_never_formatted(sandbox: Sandbox) -> None:
    assert sandbox.run().returncode == 0
    assert not [call for call in sandbox.calls() if call[0] == "mkfs.ext4"]


def test_blank_volume_is_formatted_once(sandbox: Sandbox) -> None:
    assert sandbox.run("blank-volume").returncode == 0
    assert [call[0] for call in sandbox.calls() if call[0] == "mkfs.ext4"] == ["mkfs.ext4"]
    sandbox.reset_calls()
    assert sandbox.run("blank-volume").returncode == 0
    assert not [call for call in sandbox.calls() if call[0] == "mkfs.ext4"]


def test_missing_volume_fails_before_touching_anything(
    tmp_path: Path, example_config: TunnelConfig, s3_server: S3Server
) -> None:
    with make_sandbox(tmp_path, example_config, s3=s3_server, volume=False) as sandbox:
        result = sandbox.run()
        assert result.returncode == 1
        assert "FAILED: state volume homelab-edge-state is not attached" in result.stderr
        # Only the health timer, which reports this failure, was started.
        assert _mutations(sandbox.calls()) == [
            ["systemctl", "enable", "homelab-tunnel-health.timer"],
            ["systemctl", "start", "homelab-tunnel-health.timer"],
        ]
        assert sandbox.status().startswith(
            "failed at step state-volume: state volume homelab-edge-state"
        )


def test_tampered_headscale_package_is_not_installed(sandbox: Sandbox) -> None:
    result = sandbox.run("bad-checksum")
    assert result.returncode == 1
    assert "does not match the release's checksums.txt" in result.stderr
    assert "headscale" not in sandbox.machine()["packages"]


def test_config_checksum_is_enforced_too(tmp_path: Path, s3_server: S3Server) -> None:
    config = config_with(headscale={"deb_sha256": "ab" * 32})
    with make_sandbox(tmp_path, config, s3=s3_server) as sandbox:
        result = sandbox.run()
        assert result.returncode == 1
        assert "does not match headscale.deb_sha256 from the config" in result.stderr
        assert "headscale" not in sandbox.machine()["packages"]


def test_caddy_waits_for_the_reserved_ip(sandbox: Sandbox) -> None:
    assert sandbox.run().returncode == 0
    calls = sandbox.calls()
    checks = [
        i
        for i, c in enumerate(calls)
        if c[0] == "curl" and c[-1].endswith("reserved_ip/ipv4/active")
    ]
    caddy_start = [
        i
        for i, c in enumerate(calls)
        if c[0] == "systemctl" and c[-1] == "caddy" and c[-2] in ("start", "restart")
    ]
    assert len(checks) == 2  # inactive once, then active
    assert caddy_start and caddy_start[0] > checks[-1]


def test_caddy_never_starts_while_the_reserved_ip_is_inactive(sandbox: Sandbox) -> None:
    result = sandbox.run("reserved-ip-never-active")
    assert result.returncode == 1
    assert "reserved IP still not active after 30s" in result.stderr
    assert "caddy" not in sandbox.machine()["active"]


def test_edge_joins_its_own_headscale_over_loopback(sandbox: Sandbox) -> None:
    assert sandbox.run().returncode == 0
    up = [c for c in sandbox.calls() if c[:2] == ["tailscale", "up"]]
    assert up == [[
        "tailscale", "up", "--login-server", "http://127.0.0.1:8080",
        "--authkey", "hskey-auth-0123456789abcdef", "--hostname", "homelab-edge",
        "--accept-dns=false", "--timeout", "120s",
    ]]  # fmt: skip


def test_derp_advertises_the_droplets_own_addresses(sandbox: Sandbox) -> None:
    assert sandbox.run().returncode == 0
    dropin = sandbox.root / "etc/systemd/system/headscale.service.d/20-derp-address.conf"
    text = dropin.read_text()
    assert "HEADSCALE_DERP_SERVER_IPV4=203.0.113.10" in text
    assert "HEADSCALE_DERP_SERVER_IPV6=2001:db8::10" in text
    assert "198.51.100.7" not in text  # never the reserved IP


@needs_systemd_analyze
def test_the_derp_address_drop_in_is_one_systemd_reads(sandbox: Sandbox, tmp_path: Path) -> None:
    """Written by bootstrap at run time, so not among the shipped files test_units verifies."""
    assert sandbox.run().returncode == 0
    root = tmp_path / "system"
    (root / "headscale.service.d").mkdir(parents=True)
    names = install_package_units(root, "/bin/true")
    written = sandbox.root / "etc/systemd/system/headscale.service.d/20-derp-address.conf"
    (root / "headscale.service.d/20-derp-address.conf").write_text(written.read_text())
    assert verify(root, names) == "exit 0\n"


def test_rendered_configs_are_installed_where_services_read_them(
    sandbox: Sandbox, example_config: TunnelConfig
) -> None:
    assert sandbox.run().returncode == 0
    conf = sandbox.root / CONF.lstrip("/")
    files = json.loads(edge_config_object(example_config).body)["files"]
    assert (sandbox.root / "etc/caddy/Caddyfile").read_text() == files["Caddyfile"]
    assert (sandbox.root / "etc/headscale/policy.hujson").read_text() == files["policy.hujson"]
    assert (conf / "health.env").read_text() == files["health.env"]
    assert (sandbox.root / "etc/headscale/config.yaml").read_text() == (
        conf / "headscale.yaml"
    ).read_text()


def test_egress_is_switched_on_only_when_asked(tmp_path: Path, s3_server: S3Server) -> None:
    config = config_with(egress_via_reserved_ip=True)
    with make_sandbox(tmp_path, config, s3=s3_server) as sandbox:
        assert sandbox.run().returncode == 0
        assert "homelab-tunnel-egress" in sandbox.machine()["enabled"]


def test_egress_stays_off_by_default(sandbox: Sandbox) -> None:
    assert sandbox.run().returncode == 0
    assert "homelab-tunnel-egress" not in sandbox.machine()["enabled"]


def test_restored_node_is_not_registered_again(sandbox: Sandbox) -> None:
    result = sandbox.run("restored-node")
    assert result.returncode == 0, result.stdout + result.stderr
    calls = sandbox.calls()
    assert not [c for c in calls if c[:2] == ["tailscale", "up"]]
    assert not [c for c in calls if c[:2] == ["headscale", "preauthkeys"]]


# ---------------------------------------------------------------------------
# The droplet never bricks itself
# ---------------------------------------------------------------------------

HEALTH_TIMER = "homelab-tunnel-health.timer"
FSTAB_GENERATOR = Path("/usr/lib/systemd/system-generators/systemd-fstab-generator")
needs_fstab_generator = pytest.mark.skipif(
    not FSTAB_GENERATOR.exists(), reason="systemd-fstab-generator is absent (Debian: systemd)"
)


def _boot_requirements(tmp_path: Path, fstab: Path) -> dict[str, set[str]]:
    """Which mounts systemd would make local-fs.target require, and which it only wants."""
    out = tmp_path / "generated"
    dirs = [out / name for name in ("normal", "early", "late")]
    for directory in dirs:
        directory.mkdir(parents=True)
    subprocess.run(
        [str(FSTAB_GENERATOR), *map(str, dirs)],
        env={"SYSTEMD_FSTAB": str(fstab), "PATH": "/usr/bin:/bin"},
        check=True,
        capture_output=True,
        timeout=30,
    )
    found: dict[str, set[str]] = {"requires": set(), "wants": set()}
    for kind in found:
        folder = dirs[0] / f"local-fs.target.{kind}"
        if folder.is_dir():
            found[kind] = {path.name for path in folder.iterdir() if path.name.endswith(".mount")}
    return found


@needs_fstab_generator
def test_a_lost_volume_never_holds_the_boot(sandbox: Sandbox, tmp_path: Path) -> None:
    """Every line bootstrap writes is nofail: local-fs.target only wants the mounts."""
    assert sandbox.run().returncode == 0
    found = _boot_requirements(tmp_path, sandbox.root / "etc/fstab")
    assert found["requires"] == set()
    assert len(found["wants"]) == 6


@needs_fstab_generator
def test_the_generator_check_sees_a_hard_requirement(tmp_path: Path) -> None:
    fstab = tmp_path / "fstab"
    fstab.write_text("/mnt/state/caddy /var/lib/caddy none bind 0 0\n")
    assert _boot_requirements(tmp_path, fstab)["requires"] == {"var-lib-caddy.mount"}


def test_fstab_without_a_final_newline_keeps_its_last_line(sandbox: Sandbox) -> None:
    fstab = sandbox.root / "etc/fstab"
    fstab.write_text("LABEL=cloudimg-rootfs / ext4 discard,errors=remount-ro 0 1")
    assert sandbox.run().returncode == 0
    lines = fstab.read_text().splitlines()
    assert lines[0] == "LABEL=cloudimg-rootfs / ext4 discard,errors=remount-ro 0 1"
    assert len(lines) == 7


def test_an_older_line_for_the_same_mount_is_replaced_not_doubled(
    sandbox: Sandbox, example_config: TunnelConfig
) -> None:
    volume = f"{sandbox.root}/mnt/{example_config.volume_name}"
    old = f"{volume}/caddy {sandbox.root}/var/lib/caddy none bind 0 0"
    (sandbox.root / "etc/fstab").write_text(old + "\n")
    assert sandbox.run().returncode == 0
    caddy = [
        line
        for line in (sandbox.root / "etc/fstab").read_text().splitlines()
        if line.split()[1] == f"{sandbox.root}/var/lib/caddy"
    ]
    assert caddy == [
        f"{volume}/caddy {sandbox.root}/var/lib/caddy none "
        f"bind,nofail,x-systemd.requires-mounts-for={volume} 0 0"
    ]


def test_a_cut_off_keyring_download_is_not_kept(sandbox: Sandbox) -> None:
    keyring = sandbox.root / "usr/share/keyrings/tailscale-archive-keyring.gpg"
    result = sandbox.run("keyring-cut-off")
    assert result.returncode == 1
    assert "FAILED: cannot download the signing key https://pkgs.tailscale.com" in result.stderr
    assert sorted(p.name for p in keyring.parent.iterdir()) == []
    assert sandbox.run().returncode == 0
    assert keyring.read_bytes().startswith(b"-----BEGIN PGP PUBLIC KEY BLOCK-----")


def test_success_is_recorded_for_the_health_agent(sandbox: Sandbox) -> None:
    assert sandbox.run().returncode == 0
    assert sandbox.status().startswith("ready: edge ready: homelab-edge on 198.51.100.7")


def test_the_health_timer_starts_before_any_risky_step(sandbox: Sandbox) -> None:
    assert sandbox.run().returncode == 0
    calls = sandbox.calls()
    timer = calls.index(["systemctl", "start", "homelab-tunnel-health.timer"])
    first_risky = next(i for i, call in enumerate(calls) if call[0] in ("blkid", "curl", "apt-get"))
    assert timer < first_risky


@pytest.mark.parametrize(("failed_before", "wait"), [(0, None), (1, "30"), (3, "120"), (9, "900")])
def test_retries_wait_longer_after_each_failure(
    sandbox: Sandbox, failed_before: int, wait: str | None
) -> None:
    attempts = sandbox.root / "run/homelab-tunnel/bootstrap-attempts"
    attempts.parent.mkdir(parents=True)
    attempts.write_text(f"{failed_before}\n")
    sandbox.env["HOMELAB_TUNNEL_BACKOFF"] = str(attempts)
    result = sandbox.run()
    assert result.returncode == 0
    calls = sandbox.calls()
    guarded = _index(calls, lambda call: call[0] == "setpriv") + 1
    timer = calls.index(["systemctl", "is-enabled", "--quiet", HEALTH_TIMER])
    assert calls[guarded:timer] == ([["sleep", wait]] if wait else [])
    if wait:
        assert f"attempt {failed_before + 1} after a failure: waiting {wait}s" in result.stdout
    assert not attempts.exists()  # a success resets the count


def test_a_failure_counts_towards_the_next_wait(sandbox: Sandbox) -> None:
    attempts = sandbox.root / "run/homelab-tunnel/bootstrap-attempts"
    sandbox.env["HOMELAB_TUNNEL_BACKOFF"] = str(attempts)
    assert sandbox.run("reserved-ip-never-active").returncode == 1
    assert attempts.read_text() == "1\n"


def test_roots_of_a_private_ca_are_trusted_once(tmp_path: Path, s3_server: S3Server) -> None:
    root = (ROOT / "tests/data/tls/test-root.pem").read_text()
    config = config_with(
        tls={
            "acme_ca": "https://acme.example.net/dir",
            "ca_roots": root + root,
            "caa_issuer": "example.net",
        }
    )
    with make_sandbox(tmp_path, config, s3=s3_server) as sandbox:
        assert sandbox.run().returncode == 0
        trusted = sandbox.root / "usr/local/share/ca-certificates/homelab-tunnel"
        assert sorted(p.name for p in trusted.iterdir()) == ["root-1.crt", "root-2.crt"]
        assert (trusted / "root-1.crt").read_text() == root
        assert ["update-ca-certificates"] in sandbox.calls()
        sandbox.reset_calls()
        assert sandbox.run().returncode == 0
        assert ["update-ca-certificates"] not in sandbox.calls()


def test_without_a_private_ca_the_trust_store_is_left_alone(sandbox: Sandbox) -> None:
    assert sandbox.run().returncode == 0
    assert ["update-ca-certificates"] not in sandbox.calls()


# ---------------------------------------------------------------------------
# Backups: restore on a blank volume, the upgrade guard, streaming
# ---------------------------------------------------------------------------

HS = "var/lib/headscale"
KEY_FILES = {"noise_private.key": b"privkey:noise\n", "derp_server_private.key": b"privkey:derp\n"}


def _index(calls: list[list[str]], match: Callable[[list[str]], bool]) -> int:
    return next(i for i, call in enumerate(calls) if match(call))


def _installs_headscale(call: list[str]) -> bool:
    return call[0] == "apt-get" and any(a.endswith(".deb") and "headscale_" in a for a in call)


def _starts_headscale(call: list[str]) -> bool:
    return (
        call[:1] == ["systemctl"] and call[-1] == "headscale" and call[-2] in {"start", "restart"}
    )


def _seed_backup(sandbox: Sandbox, tmp_path: Path) -> Path:
    """What an earlier edge with the same secret left in the bucket: the database replica
    (sealed) and both key files under a signed manifest."""
    replica = shaped_database(sandbox.state / "replica.sqlite", "0.29.2")
    settings = s3.Settings.from_env(sandbox.backup)
    prefix = sandbox.backup["BACKUP_PREFIX"]
    lines = []
    for name, data in KEY_FILES.items():
        encrypted = tmp_path / f"{name}.age"
        encrypted.write_bytes(AGE_HEADER + data)
        s3.put(settings, f"{prefix}/keys/{name}.age", encrypted)
        lines += [f"{_sha256(data)}  {name}\n", f"{_sha256(encrypted.read_bytes())}  {name}.age\n"]
    manifest = tmp_path / "manifest.sha256"
    manifest.write_bytes(sign(EDGE_SECRET, "keys", "".join(lines).encode()))
    s3.put(settings, f"{prefix}/keys/manifest.sha256", manifest)
    found = digest(replica)
    seal = tmp_path / "seal"
    body = f"homelab-tunnel database seal v1\ndigest {found}\ntime 2026-11-29T21:00:00Z\n"
    seal.write_bytes(sign(EDGE_SECRET, "seal", body.encode()))
    s3.put(settings, f"{prefix}/seals/20261129T210000Z-{found}", seal)
    return replica


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_a_blank_volume_is_restored_before_headscale_is_touched(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    replica = _seed_backup(sandbox, tmp_path)
    result = sandbox.run("blank-volume")
    assert result.returncode == 0, result.stdout + result.stderr
    calls = sandbox.calls()
    restore = _index(calls, lambda c: c[:2] == ["litestream", "restore"])
    assert restore < _index(calls, _installs_headscale) < _index(calls, _starts_headscale)
    assert not [c for c in calls[:restore] if c[0] == "headscale"]
    state = sandbox.root / HS
    assert (state / "db.sqlite").read_bytes() == replica.read_bytes()
    for name, data in KEY_FILES.items():
        assert (state / name).read_bytes() == data
        assert (state / name).stat().st_mode & 0o777 == 0o600
    assert (state / ".homelab-tunnel-initialized").exists()
    when, what = (sandbox.root / "var/lib/homelab-tunnel/restored").read_text().split(" ", 1)
    assert what == "database noise_private.key derp_server_private.key\n"
    assert datetime.strptime(when, "%Y-%m-%dT%H:%M:%SZ")
    bucket = sandbox.backup["BACKUP_BUCKET"]
    assert sandbox.step("restore") == (
        "restore-state: restored database noise_private.key "
        f"derp_server_private.key from s3://{bucket}/homelab-edge"
    )


def test_a_restored_volume_is_not_restored_again(sandbox: Sandbox, tmp_path: Path) -> None:
    _seed_backup(sandbox, tmp_path)
    assert sandbox.run("blank-volume").returncode == 0
    sandbox.reset_calls()
    assert sandbox.run("blank-volume").returncode == 0
    assert (
        sandbox.step("restore")
        == "restore-state: state volume already initialized; nothing restored"
    )
    assert not [c for c in sandbox.calls() if c[0] == "litestream"]


def test_a_volume_holding_a_database_is_never_overwritten(sandbox: Sandbox, tmp_path: Path) -> None:
    _seed_backup(sandbox, tmp_path)
    state = sandbox.root / HS
    shaped_database(state / "db.sqlite", "0.29.2")
    (state / "noise_private.key").write_bytes(b"the volume's own key\n")
    before = sandbox.tree()
    result = sandbox.run()
    assert result.returncode == 0, result.stdout + result.stderr
    assert (
        sandbox.step("restore")
        == "restore-state: the state volume holds a database; nothing restored"
    )
    assert not [c for c in sandbox.calls() if c[:2] == ["litestream", "restore"]]
    after = sandbox.tree()
    for name in (f"{HS}/db.sqlite", f"{HS}/noise_private.key"):
        assert after[name] == before[name]
    assert f"{HS}/derp_server_private.key" not in after
    assert not (sandbox.root / "var/lib/homelab-tunnel/restored").exists()


def test_an_empty_bucket_is_a_first_deploy(sandbox: Sandbox) -> None:
    result = sandbox.run("blank-volume")
    assert result.returncode == 0, result.stdout + result.stderr
    assert sandbox.step("restore").startswith("restore-state: nothing to restore: s3://")
    assert (sandbox.root / HS / ".homelab-tunnel-initialized").exists()
    assert not (sandbox.root / "var/lib/homelab-tunnel/restored").exists()


def test_a_failed_restore_stops_before_headscale_and_is_retried(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    _seed_backup(sandbox, tmp_path)
    broken = tmp_path / "broken.age"
    broken.write_bytes(b"encrypted to someone else")
    prefix = sandbox.backup["BACKUP_PREFIX"]
    s3.put(s3.Settings.from_env(sandbox.backup), f"{prefix}/keys/noise_private.key.age", broken)
    result = sandbox.run("blank-volume")
    assert result.returncode == 1
    assert (
        "FAILED: restore from the backup bucket: homelab-edge/keys/noise_private.key.age is not "
        "the one this edge's manifest names"
    ) in result.stderr
    assert sandbox.status().startswith("failed at step restore: restore from the backup")
    assert "headscale" not in sandbox.machine()["packages"]
    state = sandbox.root / HS
    assert not (state / ".homelab-tunnel-initialized").exists()
    assert not (state / "db.sqlite").exists()  # all or nothing: the next attempt starts over


def test_a_skipped_minor_release_is_refused_before_headscale_is_installed(
    sandbox: Sandbox,
) -> None:
    database = shaped_database(sandbox.root / HS / "db.sqlite", "0.27.1")
    before = hashlib.sha256(database.read_bytes()).hexdigest()
    result = sandbox.run()
    assert result.returncode == 1
    failed = result.stderr.strip().splitlines()[-1]
    assert failed.startswith("homelab-tunnel: FAILED: Headscale 0.27.1 -> 0.29.2 skips 1 minor")
    assert "set headscale.version to the newest 0.28.x release" in failed
    assert sandbox.status().startswith(
        "failed at step upgrade-guard: Headscale 0.27.1 -> 0.29.2 skips 1 minor"
    )
    calls = sandbox.calls()
    assert not [c for c in calls if _installs_headscale(c) or _starts_headscale(c)]
    assert not [c for c in calls if c[0] == "headscale"]
    assert "headscale" not in sandbox.machine()["packages"]
    assert hashlib.sha256(database.read_bytes()).hexdigest() == before
    assert not (sandbox.root / HS / "pre-upgrade").exists()


def test_one_minor_step_is_allowed_after_a_copy_on_and_off_the_box(sandbox: Sandbox) -> None:
    database = shaped_database(sandbox.root / HS / "db.sqlite", "0.28.0")
    result = sandbox.run()
    assert result.returncode == 0, result.stdout + result.stderr
    copies = list((sandbox.root / HS / "pre-upgrade").iterdir())
    assert [c.name[: len("0.28.0-to-0.29.2-")] for c in copies] == ["0.28.0-to-0.29.2-"]
    with sqlite3.connect(copies[0]) as copied, sqlite3.connect(database) as original:
        assert list(copied.iterdump()) == list(original.iterdump())
    copied.close()
    original.close()
    settings = s3.Settings.from_env(sandbox.backup)
    uploaded = [key for _, _, key in s3.listing(settings, "homelab-edge/pre-upgrade/")]
    assert uploaded == [f"homelab-edge/pre-upgrade/{copies[0].name}"]
    calls = sandbox.calls()
    assert "upgrade guard: Headscale 0.28.0 (newest migration " in result.stdout
    assert f"database copied to {sandbox.root / HS}/pre-upgrade/{copies[0].name}" in result.stdout
    assert _index(calls, _installs_headscale) > 0
    assert (sandbox.root / HS / ".homelab-tunnel-headscale-version").read_text() == "0.29.2\n"
    assert sandbox.run().returncode == 0
    assert len(list((sandbox.root / HS / "pre-upgrade").iterdir())) == 1


def test_the_version_is_stamped_only_once_headscale_answers(sandbox: Sandbox) -> None:
    result = sandbox.run("headscale-unhealthy")
    assert result.returncode == 1
    assert "headscale is not answering on 127.0.0.1:8080" in result.stderr
    assert not (sandbox.root / HS / ".homelab-tunnel-headscale-version").exists()


def test_a_tampered_litestream_package_is_not_installed(sandbox: Sandbox) -> None:
    result = sandbox.run("bad-litestream-checksum")
    assert result.returncode == 1
    assert (
        "FAILED: litestream-0.5.18-linux-x86_64.deb does not match the release's checksums.txt"
        in result.stderr
    )
    packages = sandbox.machine()["packages"]
    assert isinstance(packages, dict)
    assert "litestream" not in packages and "headscale" not in packages


def test_backups_stream_once_headscale_runs(sandbox: Sandbox) -> None:
    assert sandbox.run().returncode == 0
    units = ["homelab-tunnel-litestream", "homelab-tunnel-backup-keys.path"]
    units.append("homelab-tunnel-backup-keys.timer")
    machine = sandbox.machine()
    assert set(units) <= set(machine["enabled"]) & set(machine["active"])  # type: ignore[arg-type]
    calls = sandbox.calls()
    start = _index(
        calls, lambda c: c == ["systemctl", "start", "homelab-tunnel-litestream.service"]
    )
    assert start > _index(calls, _starts_headscale)


def test_the_key_files_are_backed_up_at_once_not_when_the_timer_fires(sandbox: Sandbox) -> None:
    """Headscale wrote the keys before the .path unit started, so it never sees them;
    the timer's first run is a minute or two away. Bootstrap starts the backup itself."""
    keys_once = ["systemctl", "start", "--no-block", "homelab-tunnel-backup-keys.service"]
    assert sandbox.run().returncode == 0
    calls = sandbox.calls()
    path_unit = _index(
        calls, lambda c: c == ["systemctl", "start", "homelab-tunnel-backup-keys.path"]
    )
    assert calls.index(keys_once) > path_unit > _index(calls, _starts_headscale)
    sandbox.reset_calls()
    assert sandbox.run().returncode == 0  # every unit already running: nothing to start
    assert keys_once not in sandbox.calls()


def test_without_backups_the_guard_and_the_stamp_still_run(
    tmp_path: Path, s3_server: S3Server
) -> None:
    config = config_with(backup={"enabled": False})
    with make_sandbox(tmp_path, config, s3=s3_server) as sandbox:
        shaped_database(sandbox.root / HS / "db.sqlite", "0.27.1")
        assert sandbox.run().returncode == 1  # refused without any bucket
        (sandbox.root / HS / "db.sqlite").unlink()
        result = sandbox.run()
        assert result.returncode == 0, result.stdout + result.stderr
        assert sandbox.step("restore") == "backups off: nothing restored"
        assert sandbox.step("backups").startswith("backups off")
        assert (sandbox.root / HS / ".homelab-tunnel-headscale-version").read_text() == "0.29.2\n"
        calls = sandbox.calls()
        assert not [c for c in calls if c[0] in ("litestream", "age", "age-keygen")]
        packages = sandbox.machine()["packages"]
        assert isinstance(packages, dict)
        assert "age" not in packages and "litestream" not in packages


def test_a_lost_edge_identity_removes_its_stale_node_before_joining(sandbox: Sandbox) -> None:
    """A restored database lists the old edge node; joining again must not make `<name>-1`."""
    assert sandbox.run("stale-edge-node").returncode == 0
    calls = sandbox.calls()
    delete = calls.index(["headscale", "nodes", "delete", "--identifier", "7", "--force"])
    up = next(i for i, call in enumerate(calls) if call[:2] == ["tailscale", "up"])
    assert delete < up
    assert [n["name"] for n in sandbox.machine()["nodes"]] == ["homelab"]  # the homelab kept


def test_a_node_that_restored_its_identity_deletes_nothing(sandbox: Sandbox) -> None:
    assert sandbox.run("restored-node,stale-edge-node").returncode == 0
    assert not any(call[:2] == ["headscale", "nodes"] for call in sandbox.calls())


def test_the_metadata_service_is_closed_before_anything_else(sandbox: Sandbox) -> None:
    assert sandbox.run().returncode == 0
    calls = sandbox.calls()
    assert calls[0][0] == "nft"
    check = calls[1]
    assert check[0] == "setpriv" and "--reuid=nobody" in check and "curl" in check


def test_an_open_metadata_service_stops_the_boot(sandbox: Sandbox) -> None:
    done = sandbox.run("metadata-open")
    assert done.returncode == 1
    assert "the metadata service still answers a non-root process" in sandbox.status()
    assert not any(call[0] in ("mkfs.ext4", "apt-get") for call in sandbox.calls())


def test_an_unknown_scenario_fails_instead_of_running_the_happy_path(sandbox: Sandbox) -> None:
    done = sandbox.run("blank-volum")
    assert done.returncode != 0
    assert "unknown FAKE_SCENARIO" in done.stderr
