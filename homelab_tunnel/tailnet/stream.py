"""`status`'s one ssh session: the edge's watch agent writes frames, this reads them.

One ssh process for the whole view, not one per refresh: the agent
(edge/watch.py) looks at the edge every interval and writes each frame as a
line of JSON. Closing the session's stdin ends the agent; ssh's own failure
(exit 255) and an edge without the agent are bad input, said in one line.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from homelab_tunnel.edge.frame import FORMAT
from homelab_tunnel.errors import InputError
from homelab_tunnel.render.user_data import LIB
from homelab_tunnel.tailnet.ssh import (
    check_target,
    fingerprints,
    say_first_contact,
    ssh_options,
    unreachable,
)

WATCH = ("env", f"PYTHONPATH={LIB}", "python3", "-m", "homelab_tunnel.edge.watch")


def watch_command(interval: float, count: int) -> str:
    return " ".join([*WATCH, "--interval", f"{interval:g}", "--count", str(count)])


class FrameStream:
    """The ssh session and the frames it brings; `close()` ends both."""

    def __init__(self, target: str, *, known_hosts: Path, interval: float, count: int = 0) -> None:
        try:
            self.target = check_target(target)
        except ValueError as exc:
            raise InputError("--ssh", [str(exc)]) from None
        self.known_hosts = known_hosts
        self._trusted = fingerprints(known_hosts)
        self._said_first_contact = False
        options = [*ssh_options(known_hosts), "-o", "ServerAliveInterval=10", "-T"]
        argv = ["ssh", *options, self.target]
        try:
            self.process = subprocess.Popen(
                [*argv, watch_command(interval, count)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                errors="replace",
                start_new_session=True,
            )
        except FileNotFoundError:
            raise InputError(f"ssh {target}", ["ssh: command not found"]) from None
        self._stderr: list[str] = []
        assert self.process.stderr is not None
        stderr = self.process.stderr
        self._reader = threading.Thread(target=lambda: self._stderr.extend(stderr), daemon=True)
        self._reader.start()

    def frames(self) -> Iterator[dict[str, Any]]:
        """Each frame as it arrives; `InputError` when the session ends with no good answer."""
        assert self.process.stdout is not None
        for line in self.process.stdout:
            try:
                document = json.loads(line)
            except ValueError:
                continue  # a login banner or a shell's chatter: not a frame
            if isinstance(document, dict) and document.get("format") == FORMAT:
                self._first_contact()
                yield document
        code = self.process.wait()
        self._reader.join(timeout=5)
        self._first_contact()
        if code == 255:
            stderr = "".join(self._stderr)
            raise InputError("--ssh", [unreachable(self.target, stderr, self.known_hosts)])
        if code != 0:
            said = [line.strip() for line in self._stderr if line.strip()]
            detail = said[-1] if said else f"exit code {code}"
            raise InputError(
                f"ssh {self.target}",
                [f"the edge sent no status ({detail}); is its software this version's?"],
            )

    def _first_contact(self) -> None:
        """Said once, with the first frame (ssh has met the edge by then) or at the end."""
        if not self._said_first_contact:
            self._said_first_contact = True
            say_first_contact(self.target, self.known_hosts, self._trusted)

    def close(self) -> None:
        if self.process.stdin is not None and not self.process.stdin.closed:
            with contextlib.suppress(OSError):
                self.process.stdin.close()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> FrameStream:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
