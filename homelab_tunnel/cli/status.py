"""`homelab-tunnel status`: the edge working, live, over one ssh session.

Refreshes every `--interval` seconds until `q` or Ctrl-C; `--once` prints one
frame, `--json` one frame as JSON. Exit 1 (with --once or --json) when the
frame holds a problem, as doctor does; 2 on bad input or no answer.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import select
import sys
import termios
import threading
import tty
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.live import Live

from homelab_tunnel.cli.app import (
    DEFAULT_CONFIG,
    ConfigOption,
    SshOption,
    app,
    console,
    reports_input_errors,
)
from homelab_tunnel.cli.status_view import PathWatch, findings_of, render
from homelab_tunnel.config import TunnelConfig, load_config
from homelab_tunnel.edge.config_status import config_findings
from homelab_tunnel.errors import InputError
from homelab_tunnel.findings import Severity, count_line
from homelab_tunnel.payload import edge_config_object
from homelab_tunnel.tailnet.ssh import known_hosts_file
from homelab_tunnel.tailnet.stream import FrameStream

QUIT_KEYS = {"q", "Q", "\x1b"}


def with_expected_config(frame: dict[str, Any], config: TunnelConfig) -> dict[str, Any]:
    """The frame judged against this config file too: is the edge running what it renders?"""
    status = ((frame.get("edge") or {}).get("config") or {}).get("status") or {}
    now = datetime.now(UTC)
    judged = config_findings(status, now, expected=edge_config_object(config).version)
    findings = [f for f in findings_of(frame) if f.subject != "config"] + judged
    bad = any(f.severity is Severity.PROBLEM for f in findings)
    summary = count_line(findings) if bad else frame.get("summary", "")
    return {
        **frame,
        "findings": [finding.to_json() for finding in findings],
        "ok": not bad,
        "summary": summary,
    }


@contextlib.contextmanager
def _keys() -> Iterator[queue.Queue[str]]:
    """Key presses, one at a time, without Enter; the terminal restored afterwards."""
    keys: queue.Queue[str] = queue.Queue()
    stdin = sys.stdin
    if stdin is None or not stdin.isatty():
        yield keys
        return
    fd = stdin.fileno()
    saved = termios.tcgetattr(fd)
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                data = os.read(fd, 32)
                if not data:
                    return
                for char in data.decode(errors="replace"):
                    keys.put(char)

    tty.setcbreak(fd)
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        yield keys
    finally:
        stop.set()
        reader.join(timeout=1)
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _live(stream: FrameStream, config: TunnelConfig, target: str, interval: float) -> None:
    frames: queue.Queue[dict[str, Any] | BaseException | None] = queue.Queue()

    def pump() -> None:
        try:
            for frame in stream.frames():
                frames.put(frame)
            frames.put(None)
        except BaseException as exc:  # handed to the main thread, which raises it
            frames.put(exc)

    threading.Thread(target=pump, daemon=True).start()
    paths = PathWatch()
    footer = f"q quits; every {interval:g} s over one ssh session to {target}"
    out = console()
    waiting = f"asking {target} (the first frame comes after {interval:g} s) ..."
    with _keys() as keys, Live(out.render_str(waiting), console=out, screen=True,
                               auto_refresh=False) as live:  # fmt: skip
        while True:
            with contextlib.suppress(queue.Empty):
                if keys.get(timeout=0.1) in QUIT_KEYS:
                    return
            try:
                item = frames.get_nowait()
            except queue.Empty:
                continue
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            frame = with_expected_config(item, config)
            paths.see(frame)
            live.update(render(frame, paths, footer=footer), refresh=True)


@app.command()
@reports_input_errors
def status(
    ssh: SshOption,
    config: ConfigOption = DEFAULT_CONFIG,
    once: Annotated[bool, typer.Option("--once", help="Print one frame and exit.")] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one frame as JSON and exit.")
    ] = False,
    interval: Annotated[
        float,
        typer.Option("--interval", min=0.5, max=60.0, help="Seconds between frames."),
    ] = 2.0,
) -> None:
    """The edge working: per site traffic and latency, each upstream's path, the edge's state."""
    loaded = load_config(config)
    if once or as_json:
        frame = _one(ssh, known_hosts_file(config), interval)
        frame = with_expected_config(frame, loaded)
        if as_json:
            print(json.dumps(frame, indent=2))  # plain print: rich would re-wrap long strings
        else:
            paths = PathWatch()
            paths.see(frame)
            console().print(render(frame, paths))
        if not frame["ok"]:
            raise typer.Exit(1)
        return
    if not console().is_terminal:
        raise InputError(
            "status", ["the live view needs a terminal; --once or --json print one frame"]
        )
    known_hosts = known_hosts_file(config)
    with (
        FrameStream(ssh, known_hosts=known_hosts, interval=interval) as stream,
        contextlib.suppress(KeyboardInterrupt),
    ):
        _live(stream, loaded, ssh, interval)


def _one(target: str, known_hosts: Path, interval: float) -> dict[str, Any]:
    with FrameStream(target, known_hosts=known_hosts, interval=interval, count=1) as stream:
        for frame in stream.frames():
            return frame
    raise InputError(f"ssh {target}", ["the edge sent no status"])
