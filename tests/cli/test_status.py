"""`homelab-tunnel status`: one frame, JSON, the live view at a terminal, and ssh's failures.

`ssh` is a stand-in on PATH that records how it was called and plays frames
the edge's own code made (edge/frame.py over a scripted edge); the real
session, against a real edge, is tests/lab/test_status.py.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.config import DATA, EXAMPLE, config_with
from support.scripted_edge import Edge, caddy_page, write_edge_files
from support.terminal import Terminal

from homelab_tunnel.edge.frame import frame
from homelab_tunnel.edge.observe import Observer, Settings
from homelab_tunnel.payload import edge_config_object

CLI = Path(sys.executable).parent / "homelab-tunnel"

FAKE_SSH = """#!{python}
# homelab-tunnel tests: ssh that plays recorded frames, then waits for stdin to end.
import os, sys, time
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write("ssh " + " ".join(sys.argv[1:]) + "\\n")
sys.stderr.write(os.environ.get("FAKE_STDERR", ""))
for line in open(os.environ["FAKE_FRAMES"]):
    sys.stdout.write(line)
    sys.stdout.flush()
    time.sleep(float(os.environ.get("FAKE_DELAY", "0")))
code = int(os.environ.get("FAKE_EXIT", "0"))
if os.environ.get("FAKE_WAIT") and code == 0:
    sys.stdin.read()
    with open(os.environ["FAKE_LOG"], "a") as log:
        log.write("stdin closed\\n")
sys.exit(code)
"""


def _frames(tmp_path: Path, statuses: list[str], *, version: str | None = None) -> list[dict]:
    """Frames the edge's code makes, one per recorded tailnet status (direct, derp, ...)."""
    root = tmp_path / "edge-root"
    write_edge_files(root)
    if version is not None:
        status = root / "var/lib/homelab-tunnel/config/status.json"
        status.write_text(
            json.dumps({"applied": {"at": "2026-08-23T09:00:00Z", "version": version}})
        )
    edge = Edge()
    edge.pages["caddy"] = [caddy_page(3 * n, n, n) for n in range(len(statuses) + 2)]
    observer = Observer(Settings.read(root), root=root, run=edge.run, fetch=edge.fetch)
    found, previous = [], observer.sample()
    for name in statuses:
        edge.status = (DATA / "tailscale" / f"status-{name}.json").read_text()
        current = observer.sample()
        current.clock = previous.clock + 2.0
        found.append(frame(current, previous))
        previous = current
    return found


@pytest.fixture
def ssh(tmp_path: Path) -> Iterator[dict[str, str]]:
    """The stand-in first on PATH; its settings are the returned environment."""
    if not CLI.exists():
        pytest.skip(f"{CLI} is not installed (`make` installs it)")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "ssh"
    fake.write_text(FAKE_SSH.format(python=sys.executable))
    fake.chmod(0o755)
    yield {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "COLUMNS": "160",
        "FAKE_LOG": str(tmp_path / "ssh.log"),
        "FAKE_FRAMES": str(tmp_path / "frames.jsonl"),
    }


def _play(env: dict[str, str], frames: list[dict[str, Any]]) -> None:
    Path(env["FAKE_FRAMES"]).write_text("".join(json.dumps(f) + "\n" for f in frames))


def _run(env: dict[str, str], *args: str) -> Any:
    import subprocess

    return subprocess.run(
        [str(CLI), "status", "--config", str(EXAMPLE), *args],
        env={**env, "NO_COLOR": "1"}, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


MATCHING = edge_config_object(config_with()).version


def test_json_is_the_edges_frame_judged_against_this_config(
    tmp_path: Path, ssh: dict[str, str]
) -> None:
    _play(ssh, _frames(tmp_path, ["direct"], version=MATCHING))
    done = _run(ssh, "--ssh", "root@203.0.113.10", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    document = json.loads(done.stdout)
    assert document["ok"] is True
    assert document["sites"][0]["totals"]["requests"] == 5
    assert document["upstreams"][0]["path"]["kind"] == "direct"
    applied = f"config {MATCHING} applied at 2026-08-23T09:00:00Z"
    assert {"severity": "ok", "subject": "config", "message": applied} in document["findings"]
    (call,) = Path(ssh["FAKE_LOG"]).read_text().splitlines()
    assert call.startswith("ssh -o BatchMode=yes -o ConnectTimeout=10 ")
    assert call.endswith(
        "root@203.0.113.10 env PYTHONPATH=/usr/local/lib/homelab-tunnel python3 -m "
        "homelab_tunnel.edge.watch --interval 2 --count 1"
    )


def test_an_edge_on_another_config_version_is_a_problem_exit_1(
    tmp_path: Path, ssh: dict[str, str]
) -> None:
    _play(ssh, _frames(tmp_path, ["direct"], version="0123456789ab"))
    done = _run(ssh, "--ssh", "root@203.0.113.10", "--json")
    assert done.returncode == 1
    document = json.loads(done.stdout)
    assert document["ok"] is False
    assert document["summary"] == "1 problem(s), 0 warning(s)"
    said = f"the edge runs config 0123456789ab, this config file renders {MATCHING}"
    assert any(f["message"].startswith(said) for f in document["findings"])


def test_once_prints_the_view_with_doctors_words(tmp_path: Path, ssh: dict[str, str]) -> None:
    _play(ssh, _frames(tmp_path, ["derp"], version=MATCHING))
    done = _run(ssh, "--ssh", "root@203.0.113.10", "--once")
    assert done.returncode == 1
    out = done.stdout
    assert "homelab-edge: ready, Headscale 0.29.2, Tailscale 1.90.2" in out
    assert "blog.example.com" in out
    assert "homelab.tail.example.net   via DERP region fra" in out
    assert (
        "problem: site upstream homelab.tail.example.net: via DERP region fra, not direct "
        "(is UDP 41641 open on both sides?)"
    ) in out
    assert "problems found: 1 problem(s), 0 warning(s)" in out


def test_an_ssh_that_cannot_connect_is_one_line_and_exit_2(ssh: dict[str, str]) -> None:
    _play(ssh, [])
    refused = "ssh: connect to host 203.0.113.10 port 22: Connection timed out\n"
    env = {**ssh, "FAKE_EXIT": "255", "FAKE_STDERR": refused}
    done = _run(env, "--ssh", "root@203.0.113.10", "--once")
    assert done.returncode == 2
    assert done.stderr == (
        "--ssh: ssh root@203.0.113.10: ssh: connect to host 203.0.113.10 port 22: Connection "
        "timed out (is your address in ssh_allowed_cidrs? otherwise use the DigitalOcean console)\n"
    )


def test_an_edge_without_the_agent_is_said_in_one_line(ssh: dict[str, str]) -> None:
    _play(ssh, [])
    missing = "/usr/bin/python3: No module named homelab_tunnel.edge.watch\n"
    env = {**ssh, "FAKE_EXIT": "1", "FAKE_STDERR": missing}
    done = _run(env, "--ssh", "root@203.0.113.10", "--json")
    assert done.returncode == 2
    assert done.stderr == (
        "ssh root@203.0.113.10: the edge sent no status (/usr/bin/python3: No module named "
        "homelab_tunnel.edge.watch); is its software this version's?\n"
    )
    assert "Traceback" not in done.stdout + done.stderr


def test_the_live_view_without_a_terminal_says_so(ssh: dict[str, str]) -> None:
    done = _run(ssh, "--ssh", "root@203.0.113.10")
    assert done.returncode == 2
    assert (
        done.stderr == "status: the live view needs a terminal; --once or --json print one frame\n"
    )
    assert not Path(ssh["FAKE_LOG"]).exists()  # no ssh session was opened


@pytest.mark.parametrize("target", ["-oProxyCommand=touch /tmp/x", "root@a b", ""])
def test_a_destination_that_is_an_option_is_refused(ssh: dict[str, str], target: str) -> None:
    done = _run(ssh, "--ssh", target, "--once")
    assert done.returncode == 2
    assert done.stderr.startswith("--ssh: ")
    assert not Path(ssh["FAKE_LOG"]).exists()  # ssh never ran


def test_the_live_view_marks_a_path_change_and_quits_on_q(
    tmp_path: Path, ssh: dict[str, str]
) -> None:
    _play(ssh, _frames(tmp_path, ["direct", "direct", "derp"], version=MATCHING))
    env = {**ssh, "FAKE_DELAY": "0.3", "FAKE_WAIT": "1", "TERM": "xterm-256color", "COLUMNS": "150",
           "LINES": "50"}  # fmt: skip
    argv = [str(CLI), "status", "--config", str(EXAMPLE), "--ssh", "root@203.0.113.10"]
    with Terminal(argv, cwd=tmp_path, env=env, timeout=30) as terminal:
        terminal.expect("path changes:")
        terminal.expect(
            "homelab.tail.example.net: direct 198.51.100.22:41641 -> via DERP region fra"
        )
        os.write(terminal._main, b"q")
        code = terminal.wait()
    assert code == 0
    screen = terminal.screen
    # Reverse video (SGR 7) on the changed path, red as doctor's, and on the change line.
    assert "\x1b[1;7;31mvia DERP region fra\x1b[0m" in screen
    change = (
        r"\x1b\[1;7m\d\d:\d\d:\d\d homelab\.tail\.example\.net: direct 198\.51\.100\.22:41641 -> "
    )
    assert re.search(change + r"via DERP region fra\x1b\[0m", screen)
    assert "q quits; every 2 s over one ssh session to root@203.0.113.10" in screen
    calls = Path(ssh["FAKE_LOG"]).read_text().splitlines()
    assert len([c for c in calls if c.startswith("ssh ")]) == 1  # one session for the whole view
    assert calls[-1] == "stdin closed"  # quitting ended the edge's agent too
