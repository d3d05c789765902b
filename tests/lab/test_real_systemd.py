"""The edge's units under a real systemd: loaded, sandboxed, triggered and restarted.

systemd-analyze verify (tests/edge/test_units.py) only reads the units, and the
lab's stand-in for systemd ignores sandboxing, conditions, triggers and
Restart=. Here the machine's systemd boots in a container (tests/support/systemd_container.py)
with the units and drop-ins written where user_data writes them. Programs the
droplet gets from packages are stub scripts that record what they could do;
one test runs the real Litestream, one the shipped restore-state.sh (with the
edge's modules) under systemd-run, its caller killed half-way as a dropped ssh
connection would kill it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.binaries import require
from support.lab.shell import LabError, wait_for
from support.systemd_container import ENV, Container, SystemdUnavailable, booted, check_machine
from support.units import PACKAGE_UNITS, install_package_units, install_units, shipped_units

from homelab_tunnel.edge.envfile import parse
from homelab_tunnel.payload import fixed_files

STATE = "/var/lib/headscale"
MARKER = f"{STATE}/.homelab-tunnel-initialized"
LITESTREAM = "homelab-tunnel-litestream.service"
RESTORING = f"{STATE}/.homelab-tunnel-restoring"
RECORD = f"{STATE}/litestream.record"
KEYS = "homelab-tunnel-backup-keys.service"
# What Terraform writes into litestream.yml and backup.env: root's alone.
SECRET = "bucket-secret-only-root-reads"
CONFIG = "/etc/homelab-tunnel/litestream.yml"
RESTORE_GATE = "/run/restore-may-go-on"
RESTORE_RECORD = "/run/restore.record"
# Writable by everyone, so only the unit's sandbox can keep Litestream out of them.
PROBES = ("/etc/homelab-tunnel-probe", "/usr/local/homelab-tunnel-probe")
VOLUME_PATHS = ("/var/lib/headscale", "/etc/headscale", "/var/lib/caddy", "/var/lib/tailscale")

# Records what Litestream could do under its unit, then runs until stopped. As
# `litestream restore` (restore-state.sh), it records its process and waits for the gate.
LITESTREAM_STUB = f"""#!/bin/sh
if [ "$1" = restore ]; then
  echo "$$" >{RESTORE_RECORD}
  while [ ! -e {RESTORE_GATE} ]; do sleep 0.1; done
  exit 0
fi
echo started >>{RECORD} || exit 1
for dir in {STATE} {" ".join(PROBES)} /tmp; do
  if touch "$dir/litestream-probe" 2>/dev/null; then echo "wrote $dir"; else echo "denied $dir"; fi
done >>{RECORD}
echo "uid=$(id -u) AWS_CA_BUNDLE=${{AWS_CA_BUNDLE-unset}}" >>{RECORD}
if grep -q {SECRET} {CONFIG}; then echo "read its config"; else echo "no config"; fi >>{RECORD}
grep -E "NoNewPrivs|CapBnd" /proc/self/status >>{RECORD}
exec sleep infinity
"""


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
    for file in fixed_files():  # restore-state.sh and the edge's modules, as the bundle has them
        if file.path.startswith("/usr/local/lib/"):
            _file(layer, file.path.lstrip("/"), file.content, file.mode)
    _file(layer, CONFIG.lstrip("/"), f"# access-key-id: {SECRET}\n", 0o600)
    backup_env = (
        "BACKUP_ENDPOINT=http://127.0.0.1:9\nBACKUP_REGION=ams3\nBACKUP_BUCKET=b\n"
        f"BACKUP_PREFIX=edge\nBACKUP_ACCESS_KEY_ID=k\nBACKUP_SECRET_ACCESS_KEY={SECRET}\n"
    )
    _file(layer, "etc/homelab-tunnel/backup.env", backup_env, 0o600)
    _file(layer, "etc/homelab-tunnel/edge-secret", "the-edge-secret\n", 0o600)
    _file(layer, "etc/homelab-tunnel/edge.env", "HEADSCALE_VERSION=0.29.2\n")
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
    """`unit` stopped, its failures forgotten, no markers and no records: as a new test."""
    edge.systemctl("stop", unit)
    edge.systemctl("reset-failed", unit, check=False)
    edge.run("rm", "-f", MARKER, RESTORING, RECORD)


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
    wait_for("Litestream's stub recorded its probes", lambda: len(_record(edge)) >= 9, 5)
    record = _record(edge)
    assert record[:5] == [
        "started",
        f"wrote {STATE}",
        *(f"denied {probe}" for probe in PROBES),
        "wrote /tmp",
    ]
    # Root, but with the three capabilities it needs (CHOWN 0, DAC_OVERRIDE 1, FOWNER 3).
    assert record[5:9] == [
        "uid=0 AWS_CA_BUNDLE=unset",
        "read its config",
        "CapBnd:\t000000000000000b",
        "NoNewPrivs:\t1",
    ]
    assert edge.run("test", "-e", "/tmp/litestream-probe", check=False).returncode == 1


def _as_headscale(edge: Container, *command: str) -> subprocess.CompletedProcess[str]:
    return edge.run(
        "setpriv", "--reuid=headscale", "--regid=headscale", "--clear-groups", *command,
        check=False,
    )  # fmt: skip


def test_the_headscale_user_cannot_read_litestreams_secret(edge: Container) -> None:
    """Not its config (0600 root), not its environment or memory under /proc."""
    _fresh(edge, LITESTREAM)
    edge.sh(f"touch {MARKER}")
    edge.systemctl("start", LITESTREAM)
    wait_for("Litestream's stub started", lambda: _record(edge)[:1] == ["started"], 5)
    pid = edge.show(LITESTREAM, "MainPID")["MainPID"]
    for path in (CONFIG, "/etc/homelab-tunnel/backup.env", f"/proc/{pid}/environ"):
        denied = _as_headscale(edge, "cat", path)
        assert denied.returncode != 0 and "Permission denied" in denied.stderr, path
    assert SECRET not in _as_headscale(edge, "cat", f"/proc/{pid}/cmdline").stdout
    # The twin: a process of its own user, as Litestream was before, is open to it.
    own = edge.run("sh", "-c", "setpriv --reuid=headscale --regid=headscale --clear-groups "
                   "env PROBE=visible sleep 30 >/dev/null 2>&1 & echo $!")  # fmt: skip
    environ = f"/proc/{own.stdout.strip()}/environ"
    try:  # once setpriv has become headscale and exec'd
        wait_for("its own process's environment", lambda: "PROBE=visible" in _as_headscale(
            edge, "cat", environ).stdout, 5)  # fmt: skip
    finally:
        edge.run("kill", own.stdout.strip(), check=False)


def test_the_real_litestream_as_root_leaves_the_database_to_headscale(edge: Container) -> None:
    """SQLite (modernc.org/sqlite in Litestream 0.5.18) run as root gives the -wal and -shm it
    creates the database's owner, so Headscale can open its database again."""
    _fresh(edge, LITESTREAM)
    database = f"{STATE}/db.sqlite"
    edge.run(
        "rm",
        "-rf",
        database,
        f"{database}-wal",
        f"{database}-shm",
        f"{STATE}/.db.sqlite-litestream",
    )
    made = _as_headscale(edge, "python3", "-c", (
        f"import sqlite3; c = sqlite3.connect('{database}'); c.execute('PRAGMA journal_mode=WAL'); "
        "c.execute('CREATE TABLE t (x)'); c.commit(); c.close()"
    ))  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert edge.run("ls", f"{database}-wal", check=False).returncode != 0  # closed: no -wal left
    edge.sh(
        f"mkdir -p /srv/replica /run/systemd/system/{LITESTREAM}.d\n"
        f"printf 'dbs:\\n  - path: {database}\\n    replica:\\n      type: file\\n"
        f"      path: /srv/replica\\n' >{CONFIG}\n"
        "printf '[Service]\\nReadWritePaths=/srv/replica\\n' "
        f">/run/systemd/system/{LITESTREAM}.d/replica.conf"
    )
    stub = "/run/litestream-stub"
    edge.run("cp", "/usr/bin/litestream", stub)
    edge.run("cp", str(require("litestream")), "/usr/bin/litestream")
    edge.daemon_reload()
    try:
        edge.sh(f"touch {MARKER}")
        edge.systemctl("start", LITESTREAM)
        wait_for(
            "Litestream replicated",
            lambda: bool(edge.sh("ls /srv/replica/ltx 2>/dev/null || true").strip()),
            20,
        )
        owners = edge.run("stat", "-c", "%U %n", f"{database}-wal", f"{database}-shm").stdout
        assert owners.split() == ["headscale", f"{database}-wal", "headscale", f"{database}-shm"]
        assert edge.show(LITESTREAM, "ActiveState")["ActiveState"] == "active"
        wrote = _as_headscale(edge, "python3", "-c", (
            "import sqlite3; c = sqlite3.connect('" + database + "'); "
            "c.execute('INSERT INTO t VALUES (1)'); c.commit(); c.close()"
        ))  # fmt: skip
        assert wrote.returncode == 0, wrote.stderr
    finally:
        edge.systemctl("stop", LITESTREAM)
        edge.run("cp", stub, "/usr/bin/litestream")
        edge.run("rm", "-r", f"/run/systemd/system/{LITESTREAM}.d")
        edge.sh(f"printf '# access-key-id: {SECRET}\\n' >{CONFIG}")
        edge.daemon_reload()


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
        wait_for("Litestream's stub ran", lambda: _record(edge)[:1] == ["started"], 5)
        first = edge.show(LITESTREAM, "MainPID")["MainPID"]
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


def _last_start(edge: Container, unit: str) -> str:
    return edge.show(unit, "InactiveExitTimestampMonotonic")["InactiveExitTimestampMonotonic"]


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
        # ... and what they pulled in: the endpoint wants tailscaled, which wants Headscale.
        pulled_in = ("tailscaled.service", "headscale.service")
        edge.systemctl("stop", BOOTSTRAP, *STARTED_BY_BOOTSTRAP, *pulled_in, check=False)
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
    _fresh(edge, KEYS)
    before = _last_start(edge, KEYS)
    edge.sh(f"touch {MARKER}")
    edge.systemctl("start", path)
    edge.sh(f"echo x >{STATE}/noise_private.key")
    wait_for("the key backup ran", lambda: _last_start(edge, KEYS) != before, 5)
    edge.systemctl("stop", path)


def test_the_unwatched_database_does_not_start_the_key_backup(edge: Container) -> None:
    """The twin of the test above: the backup ran because the key changed."""
    path = "homelab-tunnel-backup-keys.path"
    _fresh(edge, KEYS)
    before = _last_start(edge, KEYS)
    edge.sh(f"touch {MARKER}")
    edge.systemctl("start", path)
    edge.sh(f"echo y >{STATE}/db.sqlite")
    with pytest.raises(LabError):
        wait_for("the key backup ran", lambda: _last_start(edge, KEYS) != before, 1)
    edge.systemctl("stop", path)


def test_nothing_starts_headscale_or_litestream_on_a_half_restored_volume(edge: Container) -> None:
    _fresh(edge, LITESTREAM)
    edge.sh(f"touch {MARKER} {RESTORING}")
    for unit in ("headscale.service", LITESTREAM):
        refused = edge.systemctl("start", unit, check=False)
        assert refused.returncode != 0, unit
        assert edge.show(unit, "AssertResult")["AssertResult"] == "no", unit
    edge.run("rm", RESTORING)
    edge.systemctl("reset-failed", LITESTREAM, check=False)
    edge.systemctl("start", "headscale.service")  # the twin: without the mark it starts
    assert _state(edge, "headscale.service") == "active"
    edge.systemctl("stop", "headscale.service")


def test_backup_env_is_read_by_the_one_parser_exactly_as_systemd_reads_it(edge: Container) -> None:
    text = (
        "# comment\n; comment\nBACKUP_SECRET_ACCESS_KEY=abc+/def=\n"
        "BACKUP_RECIPIENTS=age1one age1two\n  BACKUP_PREFIX =  homelab-edge  \nBACKUP_EMPTY=\n"
    )
    edge.sh(f"cat >/run/parity.env <<'EOF'\n{text}EOF")
    edge.run("rm", "-f", "/run/parity.out")
    edge.run("systemd-run", "--collect", "--quiet", "-p", "EnvironmentFile=/run/parity.env",
             "--", "/bin/sh", "-c",
             "env >/run/parity.new && mv /run/parity.new /run/parity.out")  # fmt: skip
    wait_for("the unit's environment", lambda: edge.run("test", "-e", "/run/parity.out",
             check=False).returncode == 0, 10)  # fmt: skip
    shown = dict(
        line.split("=", 1) for line in edge.run("cat", "/run/parity.out").stdout.splitlines()
    )
    assert {key: shown[key] for key in parse(text)} == parse(text)


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


def _in_container(edge: Container, *command: str) -> subprocess.Popen[str]:
    """A process in the container, alone in its session: what sshd gives a command."""
    enter = ["nsenter", f"--target={edge.leader}", "-m", "-u", "-i", "-n", "-p", "--"]
    return subprocess.Popen(
        [*enter, *command], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
        start_new_session=True,
    )  # fmt: skip


def test_a_restore_goes_on_when_its_caller_is_killed(edge: Container) -> None:
    """restore-state.sh --at runs as a transient unit: killing the session changes nothing,
    and --status tells the outcome afterwards (the stubbed bucket holds no database, so
    the restore ends refusing, with the volume as it was)."""
    edge.run("rm", "-f", RESTORE_GATE, RESTORE_RECORD, MARKER, RESTORING)
    edge.sh(f"echo before >{STATE}/db.sqlite && chown -R headscale:headscale {STATE}")
    script = "/usr/local/lib/homelab-tunnel/restore-state.sh"
    caller = _in_container(edge, script, "--at", "2026-11-29T21:00:00Z", "--force")
    try:
        wait_for(
            "the restore fetching",
            lambda: edge.run("test", "-s", RESTORE_RECORD, check=False).returncode == 0,
            20,
        )
        stub = edge.run("cat", RESTORE_RECORD).stdout.strip()
        cgroup = edge.run("cat", f"/proc/{stub}/cgroup").stdout
        assert "/homelab-tunnel-restore-" in cgroup  # in a unit of its own, not the session
        os.killpg(caller.pid, signal.SIGKILL)  # the connection drops: the session is gone
        caller.wait(timeout=10)
        assert edge.run("kill", "-0", stub, check=False).returncode == 0  # the restore is not
        status = edge.run(script, "--status", check=False)
        assert "is still running" in status.stdout
        edge.run("touch", RESTORE_GATE)
        wait_for(
            "the restore finished",
            lambda: "FAILED" in edge.run(script, "--status", check=False).stdout,
            20,
        )
    finally:
        if caller.poll() is None:
            os.killpg(caller.pid, signal.SIGKILL)
        edge.run("touch", RESTORE_GATE)
    status = edge.run(script, "--status", check=False)
    assert status.returncode == 1
    assert status.stdout.splitlines()[-1] == (
        "restore-state: FAILED: the bucket holds no database backup at or before "
        "2026-11-29T21:00:00Z"
    )
    assert edge.run("cat", f"{STATE}/db.sqlite").stdout == "before\n"
    assert edge.run("test", "-e", RESTORING, check=False).returncode == 1
    units = edge.systemctl("list-units", "--all", "--no-legend", "homelab-tunnel-restore-*").stdout
    assert units.strip() == ""  # collected


def test_a_restore_caller_that_stays_gets_the_outcome_itself(edge: Container) -> None:
    """The twin: nobody killed, the caller prints the lines and exits with the unit's code."""
    edge.run("rm", "-f", RESTORE_GATE, RESTORE_RECORD)
    edge.run("touch", RESTORE_GATE)
    script = "/usr/local/lib/homelab-tunnel/restore-state.sh"
    done = edge.run(script, "--at", "2026-11-29T21:00:00Z", "--force", check=False)
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert lines[0].startswith("restore-state: running as homelab-tunnel-restore-")
    assert lines[-1] == (
        "restore-state: FAILED: the bucket holds no database backup at or before "
        "2026-11-29T21:00:00Z"
    )
