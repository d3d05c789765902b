"""What a lab run made, written down as it is made, so it can always be taken down again.

Each run owns `<base>/<prefix>/state.json`: its network namespaces, the PIDs
it started (with their start times, so a reused PID is never killed) and who
owns the run. Teardown kills by namespace (`ip netns pids`) and by those PIDs,
never by process name: other sessions on the same machine run their own
tailscaled and headscale. Loop devices are found by their backing file, which
lives in the run's directory, and detached. A run whose owner died without
tearing down (kill -9) is reaped by the next run; a run kept on purpose
(`up --keep`) is not.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from support.lab.shell import run

BASE = Path(tempfile.gettempdir()) / "homelab-tunnel-lab"
# Finished runs keep their logs for a post-mortem; only the newest few.
KEEP_FINISHED_LOGS = 5


def start_time(pid: int) -> int | None:
    """The kernel's start time of `pid` (clock ticks since boot), None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


@dataclass
class Daemon:
    """A process started in a box, in its own process group, logging to one file."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 3) -> int | None:
        """SIGTERM the group, SIGKILL it after `timeout`; the exit code."""
        if self.running():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        return self.process.returncode


@dataclass
class RunState:
    """The record of one run, rewritten on every change."""

    prefix: str
    kept: bool = False
    netns: list[str] = field(default_factory=list)
    pids: dict[int, int] = field(default_factory=dict)  # pid -> start time
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def directory(self) -> Path:
        return BASE / self.prefix

    def add_netns(self, name: str) -> None:
        with self._lock:
            if name not in self.netns:
                self.netns.append(name)
            self._save()

    def add_pid(self, pid: int) -> None:
        with self._lock:
            started = start_time(pid)
            if started is not None:
                self.pids[pid] = started
            self._save()

    def keep(self) -> None:
        with self._lock:
            self.kept = True
            self._save()

    def _save(self) -> None:
        document = {
            "prefix": self.prefix,
            "owner": os.getpid(),
            "owner_start": start_time(os.getpid()),
            "kept": self.kept,
            "netns": self.netns,
            "pids": {str(pid): started for pid, started in self.pids.items()},
        }
        path = self.directory / "state.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(document, indent=1))
        temporary.replace(path)


def _namespace_pids(netns: str) -> set[int]:
    done = run(["ip", "netns", "pids", netns], check=False)
    return {int(word) for word in done.stdout.split()}


def _signal_all(pids: Iterable[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def _alive(pids: Iterable[int]) -> set[int]:
    return {pid for pid in pids if start_time(pid) is not None}


def kill_everything(netns: Sequence[str], recorded: dict[int, int]) -> None:
    """TERM, then KILL, every process in `netns` and every recorded PID still the same process."""
    ours = {pid for pid, started in recorded.items() if start_time(pid) == started}
    for name in netns:
        ours |= _namespace_pids(name)
    _signal_all(ours, signal.SIGTERM)
    deadline = time.monotonic() + 2
    while _alive(ours) and time.monotonic() < deadline:
        time.sleep(0.05)
    _signal_all(_alive(ours), signal.SIGKILL)
    for name in netns:
        _signal_all(_namespace_pids(name), signal.SIGKILL)
        run(["ip", "netns", "del", name], check=False)


def teardown(prefix: str) -> None:
    """Take down run `prefix` from its state file; keep its logs, drop the rest."""
    directory = BASE / prefix
    try:
        state = json.loads((directory / "state.json").read_text())
    except (OSError, ValueError):
        state = {}
    netns = list(state.get("netns") or [])
    netns += [name for name in _lab_netns() if name.startswith(f"{prefix}-") and name not in netns]
    recorded = {int(pid): int(started) for pid, started in (state.get("pids") or {}).items()}
    kill_everything(netns, recorded)
    for device in loop_devices(directory):
        run(["losetup", "--detach", device], check=False)
    if directory.is_dir():
        for child in directory.iterdir():
            if child.name != "logs":
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        (directory / "finished").write_text(time.strftime("%Y-%m-%dT%H:%M:%S\n"))


def loop_devices(directory: Path) -> list[str]:
    """Loop devices whose backing file is under `directory` (a droplet box's volumes)."""
    if shutil.which("losetup") is None:
        return []
    done = run(["losetup", "--list", "--json", "--output", "NAME,BACK-FILE"], check=False)
    if done.returncode != 0 or not done.stdout.strip():
        return []
    inside = f"{directory}/"
    return [
        device["name"]
        for device in json.loads(done.stdout).get("loopdevices", [])
        if (device.get("back-file") or "").startswith(inside)
    ]


def leftovers(prefix: str) -> list[str]:
    """What run `prefix` left on the machine: namespaces, live recorded processes, loop
    devices and mounts under its directory. Empty after a clean teardown."""
    directory = BASE / prefix
    found = [f"network namespace {name}" for name in _lab_netns() if name.startswith(f"{prefix}-")]
    try:
        state = json.loads((directory / "state.json").read_text())
    except (OSError, ValueError):
        state = {}
    for pid, started in (state.get("pids") or {}).items():
        if start_time(int(pid)) == int(started):
            found.append(f"process {pid}")
    found += [f"loop device {device}" for device in loop_devices(directory)]
    mounts = Path("/proc/self/mountinfo").read_text().splitlines()
    found += [f"mount {line.split()[4]}" for line in mounts if str(directory) in line]
    return found


def _lab_netns() -> list[str]:
    done = run(["ip", "netns", "list"], check=False)
    return [line.split()[0] for line in done.stdout.splitlines() if line.strip()]


def runs() -> list[dict[str, object]]:
    """Every run on this machine with a state file: prefix, owner alive, kept."""
    found = []
    for state_file in sorted(BASE.glob("*/state.json")):
        with contextlib.suppress(OSError, ValueError):
            state = json.loads(state_file.read_text())
            owner, owner_start = state.get("owner"), state.get("owner_start")
            alive = isinstance(owner, int) and start_time(owner) == owner_start
            found.append({"prefix": state["prefix"], "alive": alive, "kept": state.get("kept")})
    return found


def reap_orphans() -> list[str]:
    """Tear down runs whose owner died without doing it (and were not kept); prune old logs."""
    reaped = []
    for entry in runs():
        if not entry["alive"] and not entry["kept"]:
            teardown(str(entry["prefix"]))
            reaped.append(str(entry["prefix"]))
    finished = sorted(BASE.glob("*/finished"), key=lambda path: path.stat().st_mtime)
    for marker in finished[:-KEEP_FINISHED_LOGS]:
        shutil.rmtree(marker.parent, ignore_errors=True)
    return reaped


# Runs this process still has up: taken down at exit, and on SIGTERM.
_ACTIVE: dict[str, Callable[[], None]] = {}
_HOOKED: list[bool] = []


def down_at_exit(prefix: str, down: Callable[[], None]) -> None:
    """Run `down` when this process exits or gets SIGTERM, unless `forget_at_exit` first."""
    if not _HOOKED:
        _HOOKED.append(True)
        atexit.register(_down_all)
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            with contextlib.suppress(ValueError):  # not the main thread
                signal.signal(signal.SIGTERM, _on_sigterm)
    _ACTIVE[prefix] = down


def forget_at_exit(prefix: str) -> None:
    _ACTIVE.pop(prefix, None)


def _down_all() -> None:
    for down in list(_ACTIVE.values()):
        down()


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through finally blocks, then atexit
