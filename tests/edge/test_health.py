"""The edge's health run, as the timer starts it: only the three edge files, fake tools on PATH."""

from __future__ import annotations

import io
import json
import os
import socket
import stat
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from support.config import DATA

from homelab_tunnel.edge.collect import run_local
from homelab_tunnel.edge.webhook import notify, post_json
from homelab_tunnel.findings import problem
from homelab_tunnel.payload import fixed_files
from homelab_tunnel.render.user_data import LIB, bundle

TAILSCALE = DATA / "tailscale"
HEADSCALE = DATA / "headscale"
HOMELAB = "homelab.tail.example.net"

FAKE_TAILSCALE = """#!/bin/sh
# Records each call; answers like tailscale from fixture files.
echo "tailscale $*" >> "$FAKE_LOG"
case "$1" in
  ping) echo "pong from homelab (100.64.0.2) via 198.51.100.22:41641 in 9ms" ;;
  status)
    if [ -n "$FAKE_STATUS_FAIL" ]; then
      echo "failed to connect to local tailscaled; it doesn't appear to be running" >&2
      exit 1
    fi
    cat "$FAKE_STATUS" ;;
  whois) cat "$FAKE_WHOIS" ;;
  *) exit 2 ;;
esac
"""

FAKE_SYSTEMCTL = """#!/bin/sh
echo "systemctl $*" >> "$FAKE_LOG"
case "$*" in
  *homelab-tunnel-ports*) state="${FAKE_PORTS_UNIT:-active}" ;;
  *) state="${FAKE_LITESTREAM:-active}" ;;
esac
echo "$state"
[ "$state" = active ]
"""

FAKE_JOURNALCTL = """#!/bin/sh
echo "journalctl $*" >> "$FAKE_LOG"
cat "$FAKE_JOURNAL"
"""


@pytest.fixture(scope="module")
def edge_lib(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """/usr/local/lib/homelab-tunnel as the edge has it: user_data's real bundle, unpacked."""
    root = tmp_path_factory.mktemp("edge-root")
    with tarfile.open(fileobj=io.BytesIO(bundle(fixed_files()))) as tar:
        tar.extractall(root, filter="data")
    return root / LIB.lstrip("/")


@pytest.fixture
def edge(tmp_path: Path, edge_lib: Path) -> dict[str, str]:
    """The environment of one health run: fake tools first on PATH, health.env settings."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tools = {"tailscale": FAKE_TAILSCALE, "journalctl": FAKE_JOURNALCTL}
    tools["systemctl"] = FAKE_SYSTEMCTL
    for name, script in tools.items():
        tool = bin_dir / name
        tool.write_text(script)
        tool.chmod(tool.stat().st_mode | stat.S_IXUSR)
    return {
        "PATH": f"{bin_dir}{os.pathsep}/usr/bin:/bin",
        "PYTHONPATH": str(edge_lib),
        "FAKE_LOG": str(tmp_path / "calls.log"),
        "FAKE_STATUS": str(TAILSCALE / "status-direct.json"),
        "FAKE_WHOIS": str(TAILSCALE / "whois-homelab.json"),
        "FAKE_JOURNAL": str(HEADSCALE / "journal-clean.log"),
        "HEALTH_UPSTREAMS": HOMELAB,
        "HEALTH_WEBHOOK_URL": "",
        "HEADSCALE_VERSION": "0.29.2",
        "BOOTSTRAP_STATUS_FILE": str(_status_file(tmp_path, "ready: edge ready: homelab-edge")),
        "RESTORED_FILE": str(tmp_path / "restored"),
        "CONFIG_STATUS_FILE": str(_config_status(tmp_path)),
        "RESTORING_FILE": str(tmp_path / "restoring"),
        "PORTS_FILE": str(tmp_path / "ports.json"),  # none: no port configured
        "PORTS_STATUS_FILE": str(tmp_path / "ports-status.json"),
    }


def _config_status(directory: Path) -> Path:
    """The config agent's status on a healthy edge: the newest version applied."""
    path = directory / "config-status.json"
    applied = {"version": "d6b7b9ebea6e", "at": "2026-12-07T11:00:00Z"}
    path.write_text(json.dumps({"applied": applied, "latest": {**applied, "seen": applied["at"]}}))
    return path


def _status_file(directory: Path, text: str) -> Path:
    path = directory / "bootstrap-status"
    path.write_text(text + "\n")
    return path


def _health(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # -S: no site-packages, so anything beyond the standard library fails to import.
    return subprocess.run(
        [sys.executable, "-S", "-m", "homelab_tunnel.edge.health"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
        check=False,
    )


def test_healthy_edge_exits_0_with_one_summary_line(edge: dict[str, str]) -> None:
    done = _health(edge)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines() == [
        "homelab-tunnel health: ok: 1 site upstream(s) direct, 1 peer(s), "
        "Headscale 0.29.2 accepts Tailscale 1.80+"
    ]
    assert done.stderr == ""


def test_health_warms_the_path_before_reading_status(edge: dict[str, str]) -> None:
    _health(edge)
    calls = Path(edge["FAKE_LOG"]).read_text().splitlines()
    assert calls == [
        f"tailscale ping -c 1 --timeout 5s {HOMELAB}.",
        "tailscale status --json",
        "tailscale whois --json 100.64.0.2",
        "journalctl -u headscale --since -6min -o cat --no-pager",
    ]


def test_relayed_upstream_is_one_problem_line(edge: dict[str, str]) -> None:
    edge["FAKE_STATUS"] = str(TAILSCALE / "status-derp.json")
    done = _health(edge)
    assert done.returncode == 1
    assert done.stdout.splitlines() == [
        f"problem: site upstream {HOMELAB}: via DERP region fra, not direct "
        "(is UDP 41641 open on both sides?)",
        "homelab-tunnel health: problems: 1 problem(s), 0 warning(s)",
    ]


def test_journal_rejection_is_a_problem(edge: dict[str, str]) -> None:
    edge["FAKE_JOURNAL"] = str(HEADSCALE / "journal-0.29-json.log")
    done = _health(edge)
    assert done.returncode == 1
    assert (
        "problem: Headscale journal: Headscale rejected Tailscale 1.36 (capability version 56)"
        in done.stdout
    )


def test_outdated_peer_is_a_problem(edge: dict[str, str]) -> None:
    edge["FAKE_WHOIS"] = str(TAILSCALE / "whois-homelab-1.36.json")
    done = _health(edge)
    assert done.returncode == 1
    assert f"problem: {HOMELAB}: runs Tailscale 1.36.0" in done.stdout


def test_headscale_version_from_the_environment_sets_the_minimum(edge: dict[str, str]) -> None:
    edge["FAKE_WHOIS"] = str(TAILSCALE / "whois-homelab-1.36.json")
    edge["HEADSCALE_VERSION"] = "0.26.1"
    done = _health(edge)
    assert "accepts 1.62 or newer" in done.stdout


def test_malformed_headscale_version_falls_back_to_the_pinned_one(edge: dict[str, str]) -> None:
    edge["HEADSCALE_VERSION"] = "latest"
    done = _health(edge)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("warning: HEADSCALE_VERSION: 'latest' is not a version")
    assert "Traceback" not in done.stderr


def test_tailscaled_down_is_a_problem_not_a_traceback(edge: dict[str, str]) -> None:
    edge["FAKE_STATUS_FAIL"] = "1"
    done = _health(edge)
    assert done.returncode == 1
    assert "problem: cannot read the tailnet state" in done.stdout
    assert "doesn't appear to be running" in done.stdout
    assert "Traceback" not in done.stderr


def test_missing_tailscale_binary_is_a_problem(edge: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "bin" / "tailscale").unlink()
    done = _health(edge)
    assert done.returncode == 1
    assert "tailscale: command not found" in done.stdout


def test_unreadable_journal_is_a_warning(edge: dict[str, str]) -> None:
    edge["FAKE_JOURNAL"] = "/nonexistent/journal"
    (Path(edge["PATH"].split(os.pathsep)[0]) / "journalctl").write_text(
        "#!/bin/sh\necho 'No journal files were opened due to insufficient permissions.' >&2\n"
        "exit 1\n"
    )
    done = _health(edge)
    assert done.returncode == 0, done.stdout
    assert "warning: Headscale journal not read" in done.stdout
    assert "insufficient permissions" in done.stdout


def test_empty_upstream_list_is_a_warning(edge: dict[str, str]) -> None:
    edge["HEALTH_UPSTREAMS"] = ""
    done = _health(edge)
    assert done.returncode == 0
    assert "warning: HEALTH_UPSTREAMS is empty" in done.stdout


# ---------------------------------------------------------------------------
# Webhook, against a local server on 127.0.0.1
# ---------------------------------------------------------------------------


class _Hook(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []
    status: ClassVar[int] = 204

    def do_POST(self) -> None:
        length = min(int(self.headers.get("Content-Length", "0")), 65536)
        body = json.loads(self.rfile.read(length))
        type(self).received.append({"body": body, "type": self.headers["Content-Type"]})
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def hook() -> Iterator[tuple[str, type[_Hook]]]:
    handler = type("Hook", (_Hook,), {"received": [], "status": 204})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.timeout = 5
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", handler
    finally:
        server.shutdown()
        server.server_close()


def test_problems_are_posted_to_the_webhook(
    edge: dict[str, str], hook: tuple[str, type[_Hook]]
) -> None:
    url, handler = hook
    edge["HEALTH_WEBHOOK_URL"] = url
    edge["FAKE_STATUS"] = str(TAILSCALE / "status-derp.json")
    done = _health(edge)
    assert done.returncode == 1
    assert "webhook: sent (HTTP 204)" in done.stdout
    [request] = handler.received
    assert request["type"] == "application/json"
    body = request["body"]
    assert body["host"] == socket.gethostname()
    assert body["ok"] is False
    assert body["problems"] == [
        f"site upstream {HOMELAB}: via DERP region fra, not direct "
        "(is UDP 41641 open on both sides?)"
    ]
    assert body["text"].startswith(f"{socket.gethostname()}: homelab-tunnel health: 1 problem(s)")
    assert "via DERP region fra" in body["text"]


def test_healthy_run_posts_nothing(edge: dict[str, str], hook: tuple[str, type[_Hook]]) -> None:
    url, handler = hook
    edge["HEALTH_WEBHOOK_URL"] = url
    assert _health(edge).returncode == 0
    assert handler.received == []


def test_webhook_error_is_logged_and_the_run_goes_on(
    edge: dict[str, str], hook: tuple[str, type[_Hook]]
) -> None:
    url, handler = hook
    handler.status = 500
    edge["HEALTH_WEBHOOK_URL"] = url
    edge["FAKE_STATUS"] = str(TAILSCALE / "status-derp.json")
    done = _health(edge)
    assert done.returncode == 1
    assert "webhook: POST failed with HTTP 500" in done.stdout
    assert done.stdout.splitlines()[-1] == "webhook: POST failed with HTTP 500"
    assert "Traceback" not in done.stderr


def test_unreachable_webhook_is_logged(edge: dict[str, str]) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    edge["HEALTH_WEBHOOK_URL"] = f"http://127.0.0.1:{port}/hook"
    edge["FAKE_STATUS"] = str(TAILSCALE / "status-derp.json")
    done = _health(edge)
    assert done.returncode == 1
    assert "webhook: POST failed:" in done.stdout
    assert "Traceback" not in done.stderr


def test_non_http_webhook_is_refused(edge: dict[str, str]) -> None:
    edge["HEALTH_WEBHOOK_URL"] = "file:///etc/passwd"
    edge["FAKE_STATUS"] = str(TAILSCALE / "status-derp.json")
    done = _health(edge)
    assert "webhook: HEALTH_WEBHOOK_URL is not an http(s) URL, not sent" in done.stdout


def test_webhook_that_never_answers_times_out() -> None:
    with socket.socket() as silent:  # accepts connections (backlog) but never replies
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/hook"
        assert post_json(url, {"text": "x"}, timeout=0.5) is False


def test_unchanged_findings_are_posted_once(tmp_path: Path, hook: tuple[str, type[_Hook]]) -> None:
    url, handler = hook
    assert notify(url, "edge", [problem("", "p1")], tmp_path) is True
    assert notify(url, "edge", [problem("", "p1")], tmp_path) is False
    assert len(handler.received) == 1


def test_changed_findings_are_posted_again(tmp_path: Path, hook: tuple[str, type[_Hook]]) -> None:
    url, handler = hook
    notify(url, "edge", [problem("", "p1")], tmp_path)
    notify(url, "edge", [problem("", "p1"), problem("", "p2")], tmp_path)
    assert [r["body"]["problems"] for r in handler.received] == [["p1"], ["p1", "p2"]]


def test_recovery_is_posted_once(tmp_path: Path, hook: tuple[str, type[_Hook]]) -> None:
    url, handler = hook
    notify(url, "edge", [problem("", "p1")], tmp_path)
    notify(url, "edge", [], tmp_path)
    notify(url, "edge", [], tmp_path)
    assert [r["body"]["ok"] for r in handler.received] == [False, True]
    assert handler.received[1]["body"]["text"] == "edge: homelab-tunnel health: all clear"


def test_failed_post_is_retried_next_run(tmp_path: Path, hook: tuple[str, type[_Hook]]) -> None:
    url, handler = hook
    handler.status = 503
    assert notify(url, "edge", [problem("", "p1")], tmp_path) is False
    handler.status = 204
    assert notify(url, "edge", [problem("", "p1")], tmp_path) is True
    assert len(handler.received) == 2


def test_without_state_every_run_with_problems_posts(hook: tuple[str, type[_Hook]]) -> None:
    url, handler = hook
    notify(url, "edge", [problem("", "p1")], None)
    notify(url, "edge", [problem("", "p1")], None)
    assert len(handler.received) == 2


def test_health_uses_systemd_state_directory(
    edge: dict[str, str], hook: tuple[str, type[_Hook]], tmp_path: Path
) -> None:
    url, handler = hook
    state = tmp_path / "state"
    state.mkdir()
    edge.update(
        HEALTH_WEBHOOK_URL=url,
        STATE_DIRECTORY=str(state),
        FAKE_STATUS=str(TAILSCALE / "status-derp.json"),
    )
    _health(edge)
    second = _health(edge)
    assert len(handler.received) == 1
    assert "webhook: findings unchanged since the last notification, not sent" in second.stdout


def test_a_hanging_command_is_cut_off_at_the_budget() -> None:
    started = time.monotonic()
    result = run_local([["sleep", "30"], ["sleep", "30"]], 1.0)
    assert time.monotonic() - started < 10
    assert result.returncode == 124
    assert "sleep 30: no answer within 1s" in result.stderr


def test_webhook_answering_garbage_is_logged() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        url = f"http://127.0.0.1:{server.getsockname()[1]}/hook"

        def answer() -> None:
            connection, _ = server.accept()
            with connection:
                connection.settimeout(5)
                connection.recv(65536)
                connection.sendall(b"not http at all\r\n\r\n")

        thread = threading.Thread(target=answer, daemon=True)
        thread.start()
        assert post_json(url, {"text": "x"}, timeout=5) is False
        thread.join(timeout=5)


def test_a_command_that_cannot_run_is_reported(tmp_path: Path) -> None:
    tool = tmp_path / "tailscale"
    tool.write_text("#!/bin/sh\n")  # not executable
    result = run_local([[str(tool), "status"]], 5.0)
    assert result.returncode == 126
    assert "Permission denied" in result.stderr


def test_failed_bootstrap_is_the_first_problem(edge: dict[str, str], tmp_path: Path) -> None:
    _status_file(tmp_path, "failed: reserved IP still not active after 600s")
    done = _health(edge)
    assert done.returncode == 1
    assert done.stdout.splitlines()[0] == (
        "problem: bootstrap: failed: reserved IP still not active after 600s "
        "(retrying; journalctl -u homelab-tunnel-bootstrap)"
    )


def test_the_step_bootstrap_failed_at_is_named(edge: dict[str, str], tmp_path: Path) -> None:
    _status_file(tmp_path, "failed at step packages: cannot download the signing key https://x")
    done = _health(edge)
    assert done.returncode == 1
    assert done.stdout.splitlines()[0] == (
        "problem: bootstrap: failed at step packages: cannot download the signing key https://x "
        "(retrying; journalctl -u homelab-tunnel-bootstrap)"
    )


def test_a_status_that_is_no_failure_is_no_problem(edge: dict[str, str], tmp_path: Path) -> None:
    _status_file(tmp_path, "failedover: not a status bootstrap writes")
    done = _health(edge)
    assert "bootstrap" not in done.stdout


def test_unfinished_bootstrap_is_a_warning(edge: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "bootstrap-status").unlink()
    done = _health(edge)
    assert done.returncode == 0
    assert "warning: bootstrap: has not finished yet" in done.stdout


def test_failed_bootstrap_reaches_the_webhook(
    edge: dict[str, str], tmp_path: Path, hook: tuple[str, type[_Hook]]
) -> None:
    url, handler = hook
    _status_file(tmp_path, "failed: cannot download the signing key https://x")
    edge["HEALTH_WEBHOOK_URL"] = url
    _health(edge)
    (message,) = [request["body"] for request in handler.received]
    assert message["ok"] is False
    assert message["problems"][0].startswith("bootstrap: failed: cannot download the signing key")


# ---------------------------------------------------------------------------
# The webhook URL is a secret: no failure quotes it
# ---------------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


BROKEN_WEBHOOKS = {
    "unclosed IPv6 bracket": "https://[::1/hooks/SECRET-PATH",
    "port out of range": "https://127.0.0.1:99999/hooks/SECRET-PATH",
    "blank in the path": "https://127.0.0.1/hooks/a b/SECRET-PATH",
    "control character": "https://127.0.0.1/hooks/\x01/SECRET-PATH",
    "nothing listening": "http://127.0.0.1:{port}/hooks/SECRET-PATH",
}


@pytest.mark.parametrize("url", list(BROKEN_WEBHOOKS.values()), ids=list(BROKEN_WEBHOOKS))
def test_a_failing_webhook_is_logged_without_its_url(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert post_json(url.format(port=_closed_port()), {"text": "x"}, timeout=2) is False
    out = capsys.readouterr().out
    assert out.startswith("webhook: ")
    assert "SECRET" not in out


def test_negative_twin_the_library_error_quotes_the_url() -> None:
    import http.client
    import urllib.request

    with pytest.raises(http.client.InvalidURL) as caught:
        urllib.request.urlopen("https://127.0.0.1/hooks/a b/SECRET-PATH", timeout=2)
    assert "SECRET" in str(caught.value)


# ---------------------------------------------------------------------------
# Bytes that are not UTF-8 from the edge's own tools
# ---------------------------------------------------------------------------


def test_non_utf8_bytes_from_journalctl_and_tailscale_are_read_around(
    edge: dict[str, str], tmp_path: Path
) -> None:
    journal = tmp_path / "journal.log"
    journal.write_bytes(
        b"\xff\xfe odd bytes \x80\n"
        + (HEADSCALE / "journal-0.29-text.log").read_bytes()
        + b"\xc3\x28 more\n"
    )
    status = tmp_path / "status.json"
    status.write_bytes(
        (TAILSCALE / "status-direct.json").read_bytes().replace(b'"homelab"', b'"home\xfflab"', 1)
    )
    edge["FAKE_JOURNAL"] = str(journal)
    edge["FAKE_STATUS"] = str(status)
    done = _health(edge)
    assert "Traceback" not in done.stderr
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Headscale rejected Tailscale 1.36" in done.stdout


# ---------------------------------------------------------------------------
# Backups: a restore is told for a day; a stopped Litestream is a problem
# ---------------------------------------------------------------------------


def _restored(edge: dict[str, str], hours_ago: float) -> str:
    when = (datetime.now(UTC) - timedelta(hours=hours_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")
    Path(edge["RESTORED_FILE"]).write_text(f"{when} database noise_private.key\n")
    return when


def test_a_restore_is_a_warning_for_a_day(edge: dict[str, str]) -> None:
    when = _restored(edge, hours_ago=23.5)
    done = _health(edge)
    assert done.returncode == 0
    assert done.stdout.splitlines()[0] == (
        f"warning: backup: restored from backup: database noise_private.key at {when}"
    )


def test_an_older_restore_is_no_longer_told(edge: dict[str, str]) -> None:
    _restored(edge, hours_ago=24.5)
    done = _health(edge)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "restored from backup" not in done.stdout


def test_the_webhook_hears_of_a_restore_once(
    edge: dict[str, str], tmp_path: Path, hook: tuple[str, type[_Hook]]
) -> None:
    url, handler = hook
    when = _restored(edge, hours_ago=0.1)
    edge["HEALTH_WEBHOOK_URL"] = url
    edge["STATE_DIRECTORY"] = str(tmp_path)
    _health(edge)
    _health(edge)
    (message,) = [request["body"] for request in handler.received]
    assert message["warnings"] == [
        f"backup: restored from backup: database noise_private.key at {when}"
    ]


def test_a_restore_left_half_done_is_a_problem(edge: dict[str, str]) -> None:
    Path(edge["RESTORING_FILE"]).write_text("homelab-tunnel-restore-x since 2026-11-29T21:00:00Z\n")
    done = _health(edge)
    assert done.returncode == 1
    assert done.stdout.splitlines()[0] == (
        "problem: backup: a restore did not finish (homelab-tunnel-restore-x since "
        "2026-11-29T21:00:00Z): Headscale stays stopped until you act (restore-state.sh "
        "--status says what to do)"
    )


def test_without_the_mark_no_unfinished_restore_is_told(edge: dict[str, str]) -> None:
    done = _health(edge)
    assert done.returncode == 0, done.stdout
    assert "did not finish" not in done.stdout


def test_a_stopped_litestream_is_a_problem_when_backups_are_on(edge: dict[str, str]) -> None:
    edge["BACKUP_ENABLED"] = "true"
    edge["FAKE_LITESTREAM"] = "failed"
    done = _health(edge)
    assert done.returncode == 1
    assert done.stdout.splitlines()[0] == (
        "problem: backup: homelab-tunnel-litestream is failed: Headscale's database is not "
        "being backed up (journalctl -u homelab-tunnel-litestream)"
    )


def test_a_running_litestream_is_checked_with_one_call(edge: dict[str, str]) -> None:
    edge["BACKUP_ENABLED"] = "true"
    done = _health(edge)
    assert done.returncode == 0, done.stdout
    calls = Path(edge["FAKE_LOG"]).read_text().splitlines()
    assert calls.count("systemctl is-active homelab-tunnel-litestream") == 1


@pytest.mark.parametrize("enabled", ["false", ""])
def test_without_backups_litestream_is_not_asked(edge: dict[str, str], enabled: str) -> None:
    edge["BACKUP_ENABLED"] = enabled
    edge["FAKE_LITESTREAM"] = "inactive"
    assert _health(edge).returncode == 0
    assert "systemctl" not in Path(edge["FAKE_LOG"]).read_text()


def test_during_a_failed_bootstrap_litestream_is_not_asked(
    edge: dict[str, str], tmp_path: Path
) -> None:
    """Bootstrap starts it last: the bootstrap problem is the one to read."""
    edge["BACKUP_ENABLED"] = "true"
    edge["FAKE_LITESTREAM"] = "inactive"
    _status_file(tmp_path, "failed: Headscale 0.27.1 -> 0.29.2 skips 1 minor release(s)")
    done = _health(edge)
    assert "problem: bootstrap: failed: Headscale 0.27.1 -> 0.29.2" in done.stdout
    assert "homelab-tunnel-litestream" not in done.stdout
    assert "systemctl" not in Path(edge["FAKE_LOG"]).read_text()


# ---------------------------------------------------------------------------
# Forwarded ports: each one's upstream is checked like a site's
# ---------------------------------------------------------------------------

GAME = {"protocol": "udp", "port": "27015", "upstream": "homelab", "upstream_host": HOMELAB,
        "upstream_port": 27015}  # fmt: skip


def _forwarding(edge: dict[str, str], address: str | None) -> None:
    """ports.json with one port, and the port agent's status with `address` for it."""
    Path(edge["PORTS_FILE"]).write_text(json.dumps([GAME]))
    status = {"at": "2026-12-07T11:00:00Z", "error": None, "ports": [{**GAME, "address": address}]}
    Path(edge["PORTS_STATUS_FILE"]).write_text(json.dumps(status))


def test_a_forwarded_port_with_its_upstreams_address_keeps_the_edge_healthy(
    edge: dict[str, str],
) -> None:
    _forwarding(edge, "100.64.0.2")
    done = _health(edge)
    assert done.returncode == 0, done.stdout
    assert "systemctl is-active homelab-tunnel-ports" in Path(edge["FAKE_LOG"]).read_text()


def test_a_port_whose_upstream_has_no_tailnet_address_is_a_problem(edge: dict[str, str]) -> None:
    _forwarding(edge, None)
    done = _health(edge)
    assert done.returncode == 1
    assert (
        f"problem: port udp 27015: not forwarded: {HOMELAB} has no tailnet address" in done.stdout
    )


def test_a_stopped_port_agent_is_a_problem(edge: dict[str, str]) -> None:
    _forwarding(edge, "100.64.0.2")
    edge["FAKE_PORTS_UNIT"] = "failed"
    done = _health(edge)
    assert done.returncode == 1
    assert "problem: ports: homelab-tunnel-ports is failed" in done.stdout


def test_a_port_list_without_the_agents_status_is_a_problem(edge: dict[str, str]) -> None:
    _forwarding(edge, "100.64.0.2")
    Path(edge["PORTS_STATUS_FILE"]).unlink()
    done = _health(edge)
    assert done.returncode == 1
    assert "problem: ports: 1 configured, but the port agent has recorded nothing" in done.stdout
