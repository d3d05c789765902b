"""The frame stream `status` reads over ssh: a line of JSON per look, ended by its reader."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from support.config import ROOT
from support.scripted_edge import Edge, caddy_page, write_edge_files

from homelab_tunnel.edge.frame import FORMAT
from homelab_tunnel.edge.observe import Observer, Settings
from homelab_tunnel.edge.watch import stream


@pytest.fixture
def observer(tmp_path: Path) -> Observer:
    write_edge_files(tmp_path)
    edge = Edge()
    edge.pages["caddy"] = [caddy_page(0, 0, 0), caddy_page(4, 0, 0), caddy_page(10, 0, 0)]
    return Observer(Settings.read(tmp_path), root=tmp_path, run=edge.run, fetch=edge.fetch)


def test_a_counted_stream_sends_that_many_frames_an_interval_apart(
    observer: Observer, capsys: pytest.CaptureFixture[str]
) -> None:
    started = time.monotonic()
    assert stream(observer, 0.3, 2, io.StringIO("")) == 0  # stdin at its end: ignored
    took = time.monotonic() - started
    frames = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [frame["format"] for frame in frames] == [FORMAT, FORMAT]
    assert [frame["sites"][0]["totals"]["requests"] for frame in frames] == [4, 10]
    rates = [frame["sites"][0]["rates"] for frame in frames]
    assert all(0.25 < rate["seconds"] < 1.0 for rate in rates)
    assert took >= 0.6


def test_an_endless_stream_ends_when_its_reader_goes(
    observer: Observer, capsys: pytest.CaptureFixture[str]
) -> None:
    read, write = os.pipe()
    stdin = os.fdopen(read)
    done: list[int] = []
    thread = threading.Thread(target=lambda: done.append(stream(observer, 0.2, 0, stdin)))
    thread.start()
    time.sleep(0.7)
    os.close(write)  # ssh went away
    thread.join(timeout=5)
    stdin.close()
    assert done == [0]
    assert len(capsys.readouterr().out.splitlines()) >= 2


def test_a_bad_interval_is_refused_in_one_line() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "homelab_tunnel.edge.watch", "--interval", "0"],
        cwd=ROOT, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.splitlines()[-1].endswith("--interval: between 0.2 and 3600 seconds")


def test_an_edge_without_its_settings_cannot_start(tmp_path: Path) -> None:
    """Run where /etc/homelab-tunnel holds no metrics.env: exit 2, one line, no traceback."""
    if Path("/etc/homelab-tunnel/metrics.env").exists():
        pytest.skip("this machine has an edge's settings")
    done = subprocess.run(
        [sys.executable, "-m", "homelab_tunnel.edge.watch", "--count", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.startswith("homelab-tunnel watch: cannot start: ")
    assert "Traceback" not in done.stderr
