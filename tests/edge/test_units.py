"""The edge's systemd units (health timer, bootstrap), checked by `systemd-analyze verify`."""

from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest
from support.config import ROOT

from homelab_tunnel.edge.health import HEALTH_JOURNAL_SINCE

UNITS = ROOT / "cloud-init"
SERVICE = UNITS / "homelab-tunnel-health.service"
TIMER = UNITS / "homelab-tunnel-health.timer"
BOOTSTRAP = UNITS / "homelab-tunnel-bootstrap.service"

needs_systemd_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze is not installed here (Debian package: systemd)",
)


def _verify(directory: Path, *units: Path) -> subprocess.CompletedProcess[str]:
    """verify in a directory of its own, beside stubs for the units the service wants."""
    for stub in ("tailscaled.service", "headscale.service"):
        (directory / stub).write_text("[Service]\nExecStart=/bin/true\n")
    copies = []
    for unit in units:
        copy = directory / unit.name
        copy.write_text(unit.read_text())
        copies.append(str(copy))
    return subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *copies],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@needs_systemd_analyze
def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    if not Path("/usr/bin/python3").exists():
        pytest.skip("/usr/bin/python3 (the service's ExecStart) is absent on this machine")
    done = _verify(tmp_path, SERVICE, TIMER)
    # verify exits 0 even for values it ignores, so any complaint at all fails the test.
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


@needs_systemd_analyze
def test_verify_catches_a_broken_unit(tmp_path: Path) -> None:
    """Proves the check above can fail: a misspelt value is reported."""
    broken = tmp_path / "src" / SERVICE.name
    broken.parent.mkdir()
    broken.write_text(SERVICE.read_text().replace("Type=oneshot", "Type=oneshoot"))
    done = _verify(tmp_path, broken)
    assert "oneshoot" in done.stderr


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
    assert service["EnvironmentFile"] == "/etc/homelab-tunnel/health.env"


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


@needs_systemd_analyze
def test_bootstrap_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    # verify insists that ExecStart exists here: point it at a stand-in script.
    stub = tmp_path / "bootstrap.sh"
    stub.write_text("#!/bin/sh\n")
    stub.chmod(0o755)
    unit = tmp_path / "src" / BOOTSTRAP.name
    unit.parent.mkdir()
    unit.write_text(
        BOOTSTRAP.read_text().replace("/usr/local/lib/homelab-tunnel/bootstrap.sh", str(stub))
    )
    done = _verify(tmp_path, unit)
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


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

LITESTREAM = UNITS / "homelab-tunnel-litestream.service"
KEYS_SERVICE = UNITS / "homelab-tunnel-backup-keys.service"
KEYS_PATH = UNITS / "homelab-tunnel-backup-keys.path"
KEYS_TIMER = UNITS / "homelab-tunnel-backup-keys.timer"
MARKER = "/var/lib/headscale/.homelab-tunnel-initialized"


@needs_systemd_analyze
def test_backup_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    stub = tmp_path / "stub"
    stub.write_text("#!/bin/sh\n")
    stub.chmod(0o755)
    source = tmp_path / "src"
    source.mkdir()
    units = []
    for unit in (LITESTREAM, KEYS_SERVICE, KEYS_PATH, KEYS_TIMER):
        text = unit.read_text().replace("/usr/bin/litestream", str(stub))
        copy = source / unit.name
        copy.write_text(text.replace("/usr/local/lib/homelab-tunnel/backup-keys.sh", str(stub)))
        units.append(copy)
    done = _verify(tmp_path, *units)
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


def test_litestream_runs_as_headscale_only_on_a_volume_restore_has_seen() -> None:
    unit = _unit(LITESTREAM)
    assert unit["Unit"]["ConditionPathExists"] == MARKER
    assert "headscale.service" in unit["Unit"]["After"].split()
    service = unit["Service"]
    assert service["User"] == "headscale"
    assert service["UnsetEnvironment"] == "AWS_CA_BUNDLE"
    assert service["EnvironmentFile"] == "/etc/homelab-tunnel/backup.env"
    assert service["ExecStart"] == (
        "/usr/bin/litestream replicate -config /etc/homelab-tunnel/litestream.yml"
    )
    assert service["Restart"] == "always"


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
    assert _unit(KEYS_SERVICE)["Unit"]["ConditionPathExists"] == MARKER
    assert _unit(KEYS_SERVICE)["Service"]["ExecStart"] == (
        "/usr/local/lib/homelab-tunnel/backup-keys.sh"
    )
