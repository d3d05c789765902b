"""A command on a real pseudo-terminal, driven as a person would: wait for a prompt, type.

`isatty()` is true for the command, as it is for someone at a terminal, so
what it does only there (ask questions, ask for confirmation) is what runs.
"""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path


class Terminal:
    def __init__(
        self, argv: Sequence[str], *, cwd: Path, env: dict[str, str], timeout: float = 60
    ) -> None:
        self.timeout = timeout
        self.screen = ""  # everything printed so far, line endings as the terminal sends them
        self._seen = 0
        main, side = pty.openpty()
        self._main = main
        self.process = subprocess.Popen(
            list(argv), cwd=cwd, env=env, stdin=side, stdout=side, stderr=side,
            start_new_session=True,
        )  # fmt: skip
        os.close(side)

    def _read(self, deadline: float) -> bool:
        ready, _, _ = select.select([self._main], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            return False
        try:
            data = os.read(self._main, 4096)
        except OSError:  # EIO: the command closed the terminal
            return False
        self.screen += data.decode(errors="replace").replace("\r\n", "\n")
        return bool(data)

    def expect(self, text: str) -> str:
        """Wait until `text` appears after what was already matched; return what came before."""
        deadline = time.monotonic() + self.timeout
        while text not in self.screen[self._seen :]:
            if time.monotonic() > deadline or not self._read(deadline):
                raise AssertionError(f"never saw {text!r}; the terminal shows:\n{self.screen}")
        start = self.screen.index(text, self._seen)
        before = self.screen[self._seen : start]
        self._seen = start + len(text)
        return before

    def answer(self, prompt: str, line: str) -> str:
        before = self.expect(prompt)
        os.write(self._main, line.encode() + b"\r")
        return before

    def wait(self) -> int:
        """Read to the end; the exit code."""
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline and self._read(deadline):
            pass
        try:
            return self.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        finally:
            self.close()

    def close(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        os.close(self._main)

    def __enter__(self) -> Terminal:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process.returncode is None:
            self.close()
