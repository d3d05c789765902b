"""The edge's systemd units and drop-ins, checked by `systemd-analyze verify` and read."""

from __future__ import annotations

import configparser
from pathlib import Path

import pytest
from support.config import ROOT
from support.units import install_package_units, install_units, needs_systemd_analyze, verify

from homelab_tunnel.edge.health import HEALTH_JOURNAL_SINCE

UNITS = ROOT / "cloud-init"
SERVICE = UNITS / "homelab-tunnel-health.service"
TIMER = UNITS / "homelab-tunnel-health.timer"
BOOTSTRAP = UNITS / "homelab-tunnel-bootstrap.service"
LITESTREAM = UNITS / "homelab-tunnel-litestream.service"
KEYS_SERVICE = UNITS / "homelab-tunnel-backup-keys.service"
KEYS_PATH = UNITS / "homelab-tunnel-backup-keys.path"
KEYS_TIMER = UNITS / "homelab-tunnel-backup-keys.timer"
SEAL_SERVICE = UNITS / "homelab-tunnel-seal.service"
SEAL_TIMER = UNITS / "homelab-tunnel-seal.timer"
MID_RESTORE = UNITS / "headscale-not-mid-restore.conf"
STOP_TIMEOUT = UNITS / "headscale-stop-timeout.conf"
MARKER = "/var/lib/headscale/.homelab-tunnel-initialized"
RESTORING = "/var/lib/headscale/.homelab-tunnel-restoring"


@pytest.fixture
def unit_root(tmp_path: Path) -> tuple[Path, list[str]]:
    stub = tmp_path / "stub"
    stub.write_text("#!/bin/sh\n")
    stub.chmod(0o755)
    root = tmp_path / "system"
    root.mkdir()
    # verify insists that each Exec program exists: the ones a droplet gets
    # from packages or the bundle are `stub` here.
    names = install_package_units(root, "/bin/true")
    return root, names + install_units(
        root, lambda path: path if Path(path).exists() else str(stub)
    )


@needs_systemd_analyze
def test_every_shipped_unit_and_drop_in_passes_systemd_analyzeverify(
    unit_root: tuple[Path, list[str]],
) -> None:
    if not Path("/usr/bin/python3").exists():
        pytest.skip("/usr/bin/python3 (the health service's ExecStart) is absent on this machine")
    root, names = unit_root
    shipped = {name for name in names if name.startswith("homelab-tunnel-")}
    assert {SERVICE.name, TIMER.name, BOOTSTRAP.name, LITESTREAM.name, KEYS_PATH.name} <= shipped
    assert {SEAL_SERVICE.name, SEAL_TIMER.name} <= shipped
    assert len(list(root.glob("*.service.d/*.conf"))) == 6
    assert verify(root, names) == "exit 0\n"


@needs_systemd_analyze
@pytest.mark.parametrize(
    ("where", "typo", "said"),
    [
        (SERVICE.name, ("Type=oneshot", "Type=oneshoot"), "Failed to parse service type"),
        (
            "caddy.service.d/10-state-volume.conf",
            ("RequiresMountsFor=", "RequiresMountFor="),
            "Unknown key 'RequiresMountFor'",
        ),
    ],
)
def test_verify_catches_a_typo_in_a_unit_or_a_drop_in(
    unit_root: tuple[Path, list[str]], where: str, typo: tuple[str, str], said: str
) -> None:
    """Proves the check above can fail, for units and for the drop-ins it loads."""
    root, names = unit_root
    path = root / where
    path.write_text(path.read_text().replace(*typo))
    complaints = verify(root, names)
    assert f"{where}:" in complaints and said in complaints


def _unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[method-assign]  # keep key case
    parser.read_string(path.read_text())
    return parser


def test_service_runs_doctor_health_from_the_edge_library() -> None:
    service = _unit(SERVICE)["Service"]
    assert service["Type"] == "oneshot"
    assert service["ExecStart"] == "/usr/bin/python3 -m homelab_tunnel.edge.health"
    assert service["Environment"] == "PYTHONPATH=/usr/local/lib/homelab-tunnel"
    # configparser keeps the last of a repeated key: the webhook, optional ("-").
    assert service["EnvironmentFile"] == "-/etc/homelab-tunnel/health-webhook.env"
    text = SERVICE.read_text()
    # Optional too: before the edge-config step wrote it, a failed step is still reported.
    assert "EnvironmentFile=-/etc/homelab-tunnel/health.env\n" in text


def test_service_starts_after_tailscale_and_headscale() -> None:
    unit = _unit(SERVICE)["Unit"]
    for key in ("After", "Wants"):
        assert {"tailscaled.service", "headscale.service"} <= set(unit[key].split())


def test_timer_first_runs_after_boot_then_every_five_minutes() -> None:
    timer = _unit(TIMER)["Timer"]
    assert timer["OnBootSec"] == "4min"
    assert timer["OnUnitActiveSec"] == "5min"
    assert _unit(TIMER)["Install"]["WantedBy"] == "timers.target"


def test_journal_window_covers_the_longest_gap_between_runs() -> None:
    """Interval + accuracy must fit in the `--since` window health mode reads."""
    timer = _unit(TIMER)["Timer"]
    interval = int(timer["OnUnitActiveSec"].removesuffix("min"))
    accuracy = int(timer["AccuracySec"].removesuffix("min"))
    assert f"-{interval + accuracy}min" == HEALTH_JOURNAL_SINCE


def test_bootstrap_is_retried_forever_and_runs_at_every_boot() -> None:
    unit = _unit(BOOTSTRAP)
    assert unit["Unit"]["StartLimitIntervalSec"] == "0"
    assert unit["Service"]["Type"] == "oneshot"
    assert unit["Service"]["Restart"] == "on-failure"
    assert unit["Service"]["ExecStart"] == "/usr/local/lib/homelab-tunnel/bootstrap.sh"
    assert unit["Service"]["Environment"].startswith("HOMELAB_TUNNEL_BACKOFF=/run/")
    assert unit["Install"]["WantedBy"] == "multi-user.target"


# ---------------------------------------------------------------------------
# Backups: Litestream, and the key files on change and daily
# ---------------------------------------------------------------------------


def _values(path: Path, section: str, key: str) -> list[str]:
    """Every value of a key that may repeat (configparser keeps only the last)."""
    found, current = [], ""
    for line in path.read_text().splitlines():
        if line.startswith("["):
            current = line.strip("[]")
        elif current == section and line.startswith(f"{key}="):
            found.append(line.removeprefix(f"{key}="))
    return found


def test_litestream_runs_as_root_with_only_the_file_capabilities() -> None:
    """Root, so the key pair in its 0600 config is nothing the headscale user can read."""
    unit = _unit(LITESTREAM)
    assert unit["Unit"]["ConditionPathExists"] == MARKER
    assert unit["Unit"]["AssertPathExists"] == f"!{RESTORING}"
    assert "headscale.service" in unit["Unit"]["After"].split()
    service = unit["Service"]
    assert "User" not in service and "EnvironmentFile" not in service
    assert service["CapabilityBoundingSet"].split() == [
        "CAP_DAC_OVERRIDE",
        "CAP_CHOWN",
        "CAP_FOWNER",
    ]
    assert (service["ProtectSystem"], service["ReadWritePaths"]) == ("strict", "/var/lib/headscale")
    assert service["UnsetEnvironment"] == "AWS_CA_BUNDLE"
    assert service["ExecStart"] == (
        "/usr/bin/litestream replicate -config /etc/homelab-tunnel/litestream.yml -no-expand-env"
    )
    assert service["Restart"] == "always"


def test_headscale_never_starts_on_a_volume_a_restore_left_half_done() -> None:
    assert _unit(MID_RESTORE)["Unit"]["AssertPathExists"] == f"!{RESTORING}"


def test_headscale_is_killed_soon_when_its_graceful_stop_hangs() -> None:
    """With nodes online Headscale 0.29 never finishes a graceful stop (the lab's restore
    waited systemd's default 90 s): every restart would."""
    assert _unit(STOP_TIMEOUT)["Service"]["TimeoutStopSec"] == "10s"


def test_the_database_is_sealed_every_30_seconds_and_after_the_key_backup() -> None:
    timer = _unit(SEAL_TIMER)["Timer"]
    assert (timer["OnActiveSec"], timer["OnUnitActiveSec"]) == ("10s", "30s")
    service = _unit(SEAL_SERVICE)["Service"]
    assert service["ExecStart"] == "/usr/bin/python3 -m homelab_tunnel.edge.seal"
    assert _values(SEAL_SERVICE, "Unit", "ConditionPathExists") == [MARKER, f"!{RESTORING}"]
    assert _unit(KEYS_SERVICE)["Service"]["ExecStartPost"] == (
        "-/usr/bin/systemctl start --no-block homelab-tunnel-seal.service"
    )


def test_key_files_are_backed_up_on_change_and_daily() -> None:
    watched = [
        line.removeprefix("PathChanged=")
        for line in KEYS_PATH.read_text().splitlines()
        if line.startswith("PathChanged=")
    ]
    assert watched == [
        "/var/lib/headscale/noise_private.key",
        "/var/lib/headscale/derp_server_private.key",
    ]
    timer = _unit(KEYS_TIMER)["Timer"]
    assert (timer["OnActiveSec"], timer["OnUnitActiveSec"]) == ("1min", "1d")
    assert _values(KEYS_SERVICE, "Unit", "ConditionPathExists") == [MARKER, f"!{RESTORING}"]
    assert _unit(KEYS_SERVICE)["Service"]["ExecStart"] == (
        "/usr/bin/python3 -m homelab_tunnel.edge.keybackup"
    )
