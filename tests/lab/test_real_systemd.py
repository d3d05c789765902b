"""The edge's units under a real systemd: loaded, sandboxed, triggered and restarted.

systemd-analyze verify (tests/edge/test_units.py) only reads the units, and the
lab's stand-in for systemd ignores sandboxing, conditions, triggers and
Restart=. Here the machine's systemd boots in a container (tests/support/systemd_container.py)
with the units and drop-ins written where user_data writes them. Programs the
droplet gets from packages are stub scripts that record what they could do.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.lab.shell import LabError, wait_for
from support.systemd_container import Container, SystemdUnavailable, booted, check_machine
from support.units import PACKAGE_UNITS, install_package_units, install_units, shipped_units

STATE = "/var/lib/headscale"
MARKER = f"{STATE}/.homelab-tunnel-initialized"
LITESTREAM = "homelab-tunnel-litestream.service"
RECORD = f"{STATE}/litestream.record"
KEYS_RECORD = f"{STATE}/backup-keys.record"
# Writable by everyone, so only the unit's sandbox can keep Litestream out of them.
PROBES = ("/etc/homelab-tunnel-probe", "/usr/local/homelab-tunnel-probe")
VOLUME_PATHS = ("/var/lib/headscale", "/etc/headscale", "/var/lib/caddy", "/var/lib/tailscale")

# Records what Litestream could do under its unit, then runs until stopped.
LITESTREAM_STUB = f"""#!/bin/sh
echo started >>{RECORD} || exit 1
for dir in {STATE} {" ".join(PROBES)} /tmp; do
  if touch "$dir/litestream-probe" 2>/dev/null; then echo "wrote $dir"; else echo "denied $dir"; fi
done >>{RECORD}
echo "AWS_CA_BUNDLE=${{AWS_CA_BUNDLE-unset}} BUCKET=${{LITESTREAM_BUCKET-unset}}" >>{RECORD}
grep NoNewPrivs /proc/self/status >>{RECORD}
exec sleep infinity
"""
KEYS_STUB = f"#!/bin/sh\necho ran >>{KEYS_RECORD}\n"


def _layer(layer: Path) -> None:
    """What user_data and the packages put on a droplet, as far as these tests need."""
    system = layer / "etc/systemd/system"
    system.mkdir(parents=True)
    install_units(system)
    packaged = layer / "usr/lib/systemd/system"
    packaged.mkdir(parents=True)
    install_package_units(packaged, "/bin/sleep infinity")
    uid = _user(layer, "headscale")
    _file(layer, "usr/bin/litestream", LITESTREAM_STUB, 0o755)
    _file(layer, "usr/local/lib/homelab-tunnel/backup-keys.sh", KEYS_STUB, 0o755)
    _file(layer, "etc/homelab-tunnel/litestream.yml", "")
    _file(layer, "etc/homelab-tunnel/backup.env", "AWS_CA_BUNDLE=/x\nLITESTREAM_BUCKET=b\n")
    state = layer / STATE.lstrip("/")
    state.mkdir(parents=True)
    shutil.chown(state, uid, uid)
    for probe in PROBES:
        path = layer / probe.lstrip("/")
        path.mkdir(parents=True)
        path.chmod(0o1777)


def _file(layer: Path, path: str, text: str, mode: int = 0o644) -> None:
    target = layer / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    target.chmod(mode)


def _user(layer: Path, name: str) -> int:
    """A system user as Headscale's package adds it, in the container's copies of the files."""
    taken = {
        int(line.split(":")[2])
        for table in ("passwd", "group")
        for line in Path("/etc", table).read_text().splitlines()
        if line.count(":") >= 2
    }
    uid = max(set(range(100, 1000)) - taken)
    for table, line in (
        ("passwd", f"{name}:x:{uid}:{uid}::{STATE}:/usr/sbin/nologin"),
        ("group", f"{name}:x:{uid}:"),
    ):
        _file(layer, f"etc/{table}", Path("/etc", table).read_text() + line + "\n")
    return uid


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Container]:
    try:
        check_machine()
        layer = tmp_path_factory.mktemp("layer")
        _layer(layer)
        with booted(layer, tmp_path_factory.mktemp("container")) as container:
            yield container
    except SystemdUnavailable as exc:
        pytest.skip(f"real systemd: {exc}")


def _state(edge: Container, unit: str) -> str:
    return edge.show(unit, "ActiveState")["ActiveState"]


def _fresh(edge: Container, unit: str) -> None:
    """`unit` stopped, its failures forgotten, no marker and no records: as a new test."""
    edge.systemctl("stop", unit)
    edge.systemctl("reset-failed", unit, check=False)
    edge.run("rm", "-f", MARKER, RECORD, KEYS_RECORD)


def _units() -> list[str]:
    """The shipped units' names (not their drop-ins)."""
    return [name for name in shipped_units() if "/" not in name]


def _record(edge: Container, path: str = RECORD) -> list[str]:
    return edge.run("cat", path, check=False).stdout.splitlines()


def test_every_shipped_unit_loads_and_the_drop_ins_apply(edge: Container) -> None:
    for unit in [*_units(), *PACKAGE_UNITS]:
        shown = edge.show(unit, "LoadState", "LoadError")
        assert (shown["LoadState"], shown["LoadError"]) == ("loaded", ""), unit
    # What the check above would say of a unit that did not load.
    assert edge.show("homelab-tunnel-absent.service", "LoadState")["LoadState"] == "not-found"
    for unit in PACKAGE_UNITS:
        shown = edge.show(unit, "DropInPaths", "RequiresMountsFor", "After")
        expected = {
            f"/etc/systemd/system/{name}" for name in shipped_units() if name.startswith(unit)
        }
        assert set(shown["DropInPaths"].split()) == expected
        assert set(VOLUME_PATHS) <= set(shown["RequiresMountsFor"].split()), unit
    assert "headscale.service" in edge.show("tailscaled.service", "After")["After"].split()
    assert "headscale.service" not in edge.show("caddy.service", "After")["After"].split()


def test_systemd_finds_nothing_to_warn_about_in_the_shipped_files(edge: Container) -> None:
    """systemd logs a unit's unknown keys and bad values as it loads it, to the console here.

    The console reaches the file a moment after systemctl returns (seconds on
    a busy machine). A unit with a typo, loaded last, is both the twin (what
    a typo logs) and the barrier: once its line is there, every earlier one is.
    """
    for unit in [*_units(), *PACKAGE_UNITS]:  # loaded, with their drop-ins
        edge.show(unit, "LoadState")
    typo = "/etc/systemd/system/homelab-tunnel-typo.service"
    warning = f"{typo}:2: Unknown key 'Restrat' in section [Service]"
    edge.sh(f"printf '[Service]\\nRestrat=always\\nExecStart=/bin/true\\n' >{typo}")
    try:
        edge.daemon_reload()
        edge.show("homelab-tunnel-typo.service", "LoadState")
        wait_for("the typo's warning on the console", lambda: warning in edge.console(), 15)
        console = edge.console()
    finally:
        edge.run("rm", typo)
        edge.daemon_reload()
    shipped = "\n".join(line for line in console.splitlines() if typo not in line)
    assert "/etc/systemd/system/homelab-tunnel-" not in shipped
    assert ".service.d/" not in shipped


def test_litestream_writes_its_database_directory_and_nothing_else(edge: Container) -> None:
    _fresh(edge, LITESTREAM)
    edge.sh(f"touch {MARKER}")
    edge.systemctl("start", LITESTREAM)
    wait_for("Litestream's stub recorded its probes", lambda: len(_record(edge)) >= 7, 5)
    record = _record(edge)
    assert record[:5] == [
        "started",
        f"wrote {STATE}",
        *(f"denied {probe}" for probe in PROBES),
        "wrote /tmp",
    ]
    assert record[5:7] == ["AWS_CA_BUNDLE=unset BUCKET=b", "NoNewPrivs:\t1"]
    assert edge.run("stat", "-c", "%U", f"{STATE}/litestream-probe").stdout.strip() == "headscale"
    assert edge.run("test", "-e", "/tmp/litestream-probe", check=False).returncode == 1


def test_outside_its_unit_headscale_could_write_the_probes(edge: Container) -> None:
    """The twin of the test above: the denials come from the sandbox, not from permissions."""
    probe = " ".join(PROBES)
    edge.run(
        "setpriv", "--reuid=headscale", "--regid=headscale", "--clear-groups",
        "sh", "-ec", f"for dir in {probe}; do touch $dir/direct-probe; done",
    )  # fmt: skip


def test_litestream_does_not_start_before_restore_state_marked_the_volume(
    edge: Container,
) -> None:
    _fresh(edge, LITESTREAM)
    edge.systemctl("start", LITESTREAM)
    shown = edge.show(LITESTREAM, "ActiveState", "ConditionResult")
    assert (shown["ActiveState"], shown["ConditionResult"]) == ("inactive", "no")
    assert _record(edge) == []
    edge.sh(f"touch {MARKER}")
    edge.systemctl("start", LITESTREAM)
    assert _state(edge, LITESTREAM) == "active"
    wait_for("Litestream's stub ran", lambda: _record(edge)[:1] == ["started"], 5)


@pytest.mark.parametrize("restart", ["always", "no"])
def test_litestream_is_restarted_after_it_dies(edge: Container, restart: str) -> None:
    """As shipped (always), and with Restart=no to show the check can fail.

    A drop-in shortens RestartSec (10 s) to keep the test quick.
    """
    _fresh(edge, LITESTREAM)
    edge.sh(
        f"mkdir -p /run/systemd/system/{LITESTREAM}.d\n"
        f"printf '[Service]\\nRestartSec=200ms\\n{'' if restart == 'always' else 'Restart=no'}\\n'"
        f" >/run/systemd/system/{LITESTREAM}.d/test.conf"
    )
    edge.daemon_reload()
    try:
        edge.sh(f"touch {MARKER}")
        edge.systemctl("start", LITESTREAM)
        first = edge.show(LITESTREAM, "MainPID")["MainPID"]
        # Killed only once it ran: a kill before the stub's first line would count nothing.
        wait_for("Litestream's stub ran", lambda: _record(edge)[:1] == ["started"], 5)
        # The main process only: signalling the whole cgroup fails with EIO in this
        # container ("Failed to send signal SIGKILL to auxiliary processes") once the
        # stub has run its probes, though the main process is killed.
        edge.systemctl("kill", "--kill-whom=main", "--signal=KILL", LITESTREAM)
        if restart == "always":
            wait_for("Litestream restarted", lambda: _record(edge).count("started") == 2, 5)
            shown = edge.show(LITESTREAM, "ActiveState", "NRestarts", "MainPID")
            assert (shown["ActiveState"], shown["NRestarts"]) == ("active", "1")
            assert shown["MainPID"] != first
        else:
            wait_for("Litestream failed", lambda: _state(edge, LITESTREAM) == "failed", 5)
            assert _record(edge).count("started") == 1
    finally:
        edge.run("rm", "-r", f"/run/systemd/system/{LITESTREAM}.d")
        edge.daemon_reload()


BOOTSTRAP = "homelab-tunnel-bootstrap.service"
STARTED_BY_BOOTSTRAP = ("homelab-tunnel-config.service", "homelab-tunnel-metrics.service")
BOOTSTRAP_RECORD = "/run/bootstrap.record"


def _bootstrap_starts(edge: Container, *, drop_in: str = "", wait: float = 15) -> bool:
    """Run the bootstrap unit with a bootstrap.sh that only starts the services its steps
    start (blocking, as they do); whether it got past them within `wait` seconds."""
    starts = f"systemctl start {' '.join(STARTED_BY_BOOTSTRAP)}"
    script = f"#!/bin/sh\n{starts} && echo done >{BOOTSTRAP_RECORD}\n"
    _put(edge, "/usr/local/lib/homelab-tunnel/bootstrap.sh", script, "0755")
    # No software to fetch here: the unit's ExecStartPre (the loader) is left out.
    _put(edge, f"/run/systemd/system/{BOOTSTRAP}.d/test.conf", "[Service]\nExecStartPre=\n")
    if drop_in:
        _put(edge, "/run/systemd/system/homelab-tunnel-metrics.service.d/test.conf", drop_in)
    edge.run("rm", "-f", BOOTSTRAP_RECORD)
    edge.daemon_reload()
    try:
        edge.systemctl("start", "--no-block", BOOTSTRAP)
        wait_for("bootstrap past its starts", lambda: _record(edge, BOOTSTRAP_RECORD), wait)
        return True
    except LabError:
        return False
    finally:
        edge.systemctl("stop", BOOTSTRAP, *STARTED_BY_BOOTSTRAP, check=False)
        edge.run("rm", "-rf", f"/run/systemd/system/{BOOTSTRAP}.d",
                 "/run/systemd/system/homelab-tunnel-metrics.service.d")  # fmt: skip
        edge.daemon_reload()


def _put(edge: Container, path: str, text: str, mode: str = "0644") -> None:
    edge.run("mkdir", "-p", str(Path(path).parent))
    edge.run("sh", "-c", f"cat >{path} <<'EOF'\n{text}EOF\nchmod {mode} {path}")


def test_bootstrap_starts_its_services_without_waiting_for_itself(edge: Container) -> None:
    assert _bootstrap_starts(edge)


def test_negative_twin_a_service_ordered_after_bootstrap_deadlocks_it(edge: Container) -> None:
    """What an After= on the bootstrap unit does: the start waits for the oneshot asking for it."""
    # A start that is not waiting on anything finishes within a second; 4 s is plenty.
    assert not _bootstrap_starts(edge, drop_in=f"[Unit]\nAfter={BOOTSTRAP}\n", wait=4)


def test_a_changed_noise_key_is_backed_up(edge: Container) -> None:
    path = "homelab-tunnel-backup-keys.path"
    _fresh(edge, "homelab-tunnel-backup-keys.service")
    edge.sh(f"touch {MARKER}")
    edge.systemctl("start", path)
    edge.sh(f"echo x >{STATE}/noise_private.key")
    wait_for("the key backup ran", lambda: _record(edge, KEYS_RECORD) == ["ran"], 5)
    edge.systemctl("stop", path)


def test_the_unwatched_database_does_not_start_the_key_backup(edge: Container) -> None:
    """The twin of the test above: the backup ran because the key changed."""
    path = "homelab-tunnel-backup-keys.path"
    _fresh(edge, "homelab-tunnel-backup-keys.service")
    edge.sh(f"touch {MARKER}")
    edge.systemctl("start", path)
    edge.sh(f"echo y >{STATE}/db.sqlite")
    with pytest.raises(LabError):
        wait_for("the key backup ran", lambda: bool(_record(edge, KEYS_RECORD)), 1)
    edge.systemctl("stop", path)


def _written_schedule(timer: str) -> set[str]:
    """The timer file's On*Sec= lines, named as `systemctl show` names them (On*USec=)."""
    lines = [line.split("=", 1) for line in shipped_units()[timer].splitlines() if "=" in line]
    return {f"{key.removesuffix('Sec')}USec={value}" for key, value in lines if key[:2] == "On"}


@pytest.mark.parametrize(
    "timer", ["homelab-tunnel-health.timer", "homelab-tunnel-backup-keys.timer"]
)
def test_timers_are_scheduled_as_written(edge: Container, timer: str) -> None:
    schedule = _written_schedule(timer)
    assert len(schedule) == 2
    edge.systemctl("start", timer)
    shown = edge.show(timer, "ActiveState", "TimersMonotonic", "NextElapseUSecMonotonic")
    assert shown["ActiveState"] == "active"
    read = {
        line.split(" ; ")[0].removeprefix("{ ") for line in shown["TimersMonotonic"].split("\n")
    }
    assert read == schedule
    assert shown["NextElapseUSecMonotonic"] not in ("", "0", "infinity")
    listed = edge.systemctl("list-timers", "--no-legend", timer).stdout
    assert timer in listed and not listed.startswith("-")
