"""Running commands and waiting for conditions, with failures that say what was run."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

T = TypeVar("T")

# What every command in the lab sees: no inherited proxies, locale or Go settings.
BASE_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
}


class LabError(RuntimeError):
    """A lab step failed; the message carries the command and its output."""


def run(
    argv: Sequence[object],
    *,
    check: bool = True,
    timeout: float = 60,
    env: Mapping[str, str] | None = None,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run to completion; with `check`, a non-zero exit raises `LabError` with the output."""
    args = [str(arg) for arg in argv]
    try:
        done = subprocess.run(
            args,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            env=dict(env) if env is not None else None,
            input=input,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"{' '.join(args)}: no exit within {timeout:g}s") from exc
    if check and done.returncode != 0:
        raise LabError(
            f"{' '.join(args)} exited {done.returncode}\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
        )
    return done


def wait_for(what: str, probe: Callable[[], T | None], timeout: float, interval: float = 0.1) -> T:
    """Poll `probe` until it returns something truthy; `LabError` naming `what` otherwise.

    Exceptions from the probe count as "not yet" (a daemon still starting),
    and the last one is quoted when time runs out.
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            result = probe()
            if result:
                return result
            last = result
        except Exception as exc:  # keep polling; the last failure is reported
            last = exc
        if time.monotonic() >= deadline:
            raise LabError(f"timed out after {timeout:g}s waiting for {what} (last: {last!r})")
        time.sleep(interval)
