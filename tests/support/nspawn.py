"""What every systemd-nspawn container of the tests shares: its leader, entering it, stopping it.

This machine's PID 1 is not systemd, so containers run with `--register=no
--keep-unit` and no machined: `machinectl shell` and `systemd-run -M` do not
work. Commands reach a container through `nsenter` into its leader's
namespaces (mount, UTS, IPC, network, PID, cgroup), which also sets their root
to the container's.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "SYSTEMD_PAGER": ""}


class ContainerFailed(RuntimeError):
    """The container did not come up; the message is one line saying why."""


def enter(leader: int) -> list[str]:
    """The command prefix that runs a program inside the container led by `leader`."""
    return ["nsenter", f"--target={leader}", "-m", "-u", "-i", "-n", "-p", "-C", "--"]


def leader(nspawn: subprocess.Popen[bytes], log: Path, timeout: float) -> int:
    """The container's PID 1 as this machine sees it, once it runs systemd."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if nspawn.poll() is not None:
            lines = log.read_text(errors="replace").strip().splitlines() or ["(no output)"]
            raise ContainerFailed(f"systemd-nspawn exited {nspawn.returncode}: {lines[-1]}")
        for pid in _descendants(nspawn.pid):
            with contextlib.suppress(OSError):
                if Path(f"/proc/{pid}/comm").read_text().strip() == "systemd":
                    return pid
        time.sleep(0.02)
    raise ContainerFailed(f"systemd did not start within {timeout:.0f} s")


def _descendants(pid: int) -> list[int]:
    """`pid`'s children and theirs (nspawn may run under a shell or `unshare`)."""
    found: list[int] = []
    queue = [pid]
    while queue:
        with contextlib.suppress(OSError):
            children = Path(f"/proc/{queue[0]}/task/{queue[0]}/children").read_text().split()
            found += [int(child) for child in children]
            queue += [int(child) for child in children]
        queue.pop(0)
    return found


def stop(nspawn: subprocess.Popen[bytes], leader: int | None, timeout: float = 10) -> None:
    """Powers the container off (SIGTERM to nspawn); kills it all if that hangs."""
    if nspawn.poll() is None:
        nspawn.terminate()
    try:
        nspawn.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        if leader is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(leader, signal.SIGKILL)  # and with it, its whole PID namespace
        nspawn.kill()
        nspawn.wait(timeout=10)
