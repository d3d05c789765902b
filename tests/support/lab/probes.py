"""The harness's side of box_probes.py: run a probe in a box and read its JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import TracebackType
from typing import Any

from support.lab.boxes import Box

PROBES = Path(__file__).resolve().parent / "box_probes.py"


def probe(box: Box, *args: object, timeout: float = 60) -> Any:
    """Run one probe in `box`; its JSON document."""
    return json.loads(box.run([sys.executable, PROBES, *args], timeout=timeout).stdout)


def curl(
    box: Box, url: str, *args: str, roots: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """curl in `box`, trusting only `roots` (the lab's CA roots) when given."""
    trust = ["--cacert", str(roots)] if roots else []
    return box.run(["curl", "-sS", "--max-time", "15", *trust, *args, url], check=False, timeout=30)


class WebsocketSession:
    """A websocket held open from a box; each `send()` waits for its echo.

    The connection lives in a probe process, so it can stay open while the
    harness does something else (reloads Caddy) and then be used again.
    """

    def __init__(self, box: Box, host: str, roots: Path, messages: list[str]) -> None:
        argv = [sys.executable, PROBES, "websocket", host, roots, ",".join(messages)]
        self.process = subprocess.Popen(
            box.command(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self.handshake = self._read()

    def _read(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        return dict(json.loads(line)) if line else {"error": "probe exited"}

    def send(self) -> dict[str, Any]:
        """Send the next message; the echo (or the error)."""
        assert self.process.stdin is not None
        self.process.stdin.write("\n")
        self.process.stdin.flush()
        return self._read()

    def __enter__(self) -> WebsocketSession:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.process.kill()
        self.process.wait(timeout=10)


class LoadSession:
    """A load on one site from a box while the harness changes the edge (box_probes' `load`).

    `stop()` ends it and returns what its clients saw: requests, failed (with the
    first errors), retried (a kept connection the server closed, sent again as
    browsers do), and the longest gap between two answers, in seconds.
    """

    def __init__(self, box: Box, url: str, roots: Path, expect: str, interval: float = 0.05):
        argv = [sys.executable, PROBES, "load", url, roots, expect, interval]
        self.process = subprocess.Popen(
            box.command(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.process.stdout is not None
        self.started = json.loads(self.process.stdout.readline() or '{"started": false}')
        self.seen: dict[str, Any] | None = None

    def stop(self) -> dict[str, Any]:
        if self.seen is None:
            output, _ = self.process.communicate("\n", timeout=60)
            self.seen = dict(json.loads(output.splitlines()[-1]))
        return self.seen

    def __enter__(self) -> LoadSession:
        return self

    def __exit__(self, *_exc: object) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
