"""`homelab-tunnel doctor`: exit codes per case, --json, stdin, and the ssh path (fake ssh)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from support.config import DATA, EXAMPLE
from typer.testing import CliRunner, Result

from homelab_tunnel.cli import app
from homelab_tunnel.config import load_config
from homelab_tunnel.payload import edge_config_object

runner = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1"})
TAILSCALE = DATA / "tailscale"
HEADSCALE = DATA / "headscale"


def _doctor(*args: str, stdin: str | None = None) -> Result:
    return runner.invoke(app, ["doctor", "--config", str(EXAMPLE), *args], input=stdin)


def _status(name: str) -> str:
    return str(TAILSCALE / f"status-{name}.json")


@pytest.mark.parametrize(
    ("fixture", "exit_code", "verdict"),
    [
        ("direct", 0, "direct 198.51.100.22:41641"),
        ("derp", 1, "via DERP region fra"),
        ("peer-relay", 1, "via peer relay 100.64.0.7:7777:vni:7"),
        ("offline", 1, "offline"),
        ("idle", 1, "idle"),
        ("outdated-edge", 1, "via DERP region fra"),
        ("pre-1.86-client", 0, "direct 198.51.100.22:41641"),
    ],
)
def test_exit_code_and_verdict_per_case(fixture: str, exit_code: int, verdict: str) -> None:
    result = _doctor("--status", _status(fixture))
    assert result.exit_code == exit_code, result.output
    row = next(line for line in result.stdout.splitlines() if "(site upstream)" in line)
    assert verdict in row


def test_healthy_tailnet_says_ok() -> None:
    result = _doctor(
        "--status", _status("direct"), "--whois", str(TAILSCALE / "whois-homelab.json")
    )
    assert result.exit_code == 0, result.output
    assert "ok: 1 site upstream(s) direct" in result.stdout
    assert "problem" not in result.stdout


def test_outdated_client_from_whois_exits_1() -> None:
    result = _doctor(
        "--status", _status("direct"), "--whois", str(TAILSCALE / "whois-homelab-1.36.json")
    )
    assert result.exit_code == 1, result.output
    assert "1.36.0 (unsupported)" in result.stdout
    assert "problem: homelab.tail.example.net: runs Tailscale 1.36.0" in result.stdout


def test_journal_rejections_exit_1_and_are_shown() -> None:
    result = _doctor(
        "--status", _status("direct"), "--journal", str(HEADSCALE / "journal-0.29-text.log")
    )
    assert result.exit_code == 1, result.output
    assert "unsupported client version: v1.36 (56)" in result.stdout
    assert (
        "problem: Headscale journal: Headscale rejected Tailscale 1.36 (capability version 56)"
        in result.stdout
    )


def test_clean_journal_keeps_a_healthy_verdict() -> None:
    result = _doctor(
        "--status", _status("direct"), "--journal", str(HEADSCALE / "journal-clean.log")
    )
    assert result.exit_code == 0, result.output


def test_json_output_is_machine_readable() -> None:
    result = _doctor(
        "--status",
        _status("mixed"),
        "--whois",
        str(TAILSCALE / "whois-mixed.json"),
        "--json",
    )
    assert result.exit_code == 1
    document = json.loads(result.stdout)
    assert document["ok"] is False
    assert document["site_upstreams"] == ["homelab.tail.example.net"]
    kinds = {node["name"]: node["path"]["kind"] for node in document["nodes"] if node["path"]}
    assert kinds == {
        "homelab.tail.example.net": "direct",
        "backup.tail.example.net": "derp",
        "laptop.tail.example.net": "idle",
        "media.tail.example.net": "peer-relay",
        "nas.tail.example.net": "offline",
        "phone.tail.example.net": "offline",
    }


def test_status_from_stdin() -> None:
    result = _doctor("--status", "-", stdin=Path(_status("derp")).read_text())
    assert result.exit_code == 1, result.output
    assert "via DERP region fra" in result.stdout


def test_upstream_option_without_config() -> None:
    result = runner.invoke(app, ["doctor", "--status", _status("derp"), "--upstream", "homelab"])
    assert result.exit_code == 1, result.output
    assert "problem: site upstream homelab.tail.example.net: via DERP region fra" in result.stdout


def test_without_upstreams_paths_are_not_judged() -> None:
    result = runner.invoke(app, ["doctor", "--status", _status("derp")])
    assert result.exit_code == 0, result.output
    assert "note: no site upstreams given" in result.stdout


def test_malformed_status_json_is_bad_input_naming_the_file(tmp_path: Path) -> None:
    broken = tmp_path / "status.json"
    broken.write_text('{"BackendState": "Running", "Peer": {')
    result = _doctor("--status", str(broken))
    assert result.exit_code == 2
    assert result.stderr.startswith(f"{broken}: not JSON")
    assert "Traceback" not in result.output


def test_json_that_is_not_a_status_is_bad_input(tmp_path: Path) -> None:
    other = tmp_path / "plan.json"
    other.write_text('{"format_version": "1.2"}')
    result = _doctor("--status", str(other))
    assert result.exit_code == 2
    assert "no BackendState" in result.stderr


def test_malformed_stdin_is_named_stdin() -> None:
    result = _doctor("--status", "-", stdin="nope")
    assert result.exit_code == 2
    assert result.stderr.startswith("<stdin>: not JSON")


def test_missing_status_file_is_bad_input(tmp_path: Path) -> None:
    result = _doctor("--status", str(tmp_path / "absent.json"))
    assert result.exit_code == 2
    assert "absent.json: no such file" in result.stderr


def test_malformed_whois_is_bad_input_naming_the_file(tmp_path: Path) -> None:
    whois = tmp_path / "whois.json"
    whois.write_text("[]")
    result = _doctor("--status", _status("direct"), "--whois", str(whois))
    assert result.exit_code == 2
    assert result.stderr.startswith(f"{whois}: not `tailscale whois --json` output")


def test_a_status_source_is_required() -> None:
    result = _doctor()
    assert result.exit_code == 2
    assert "give exactly one of --status" in result.stderr


def test_status_and_ssh_together_are_refused() -> None:
    result = _doctor("--status", _status("direct"), "--ssh", "root@203.0.113.10")
    assert result.exit_code == 2
    assert "give exactly one of --status" in result.stderr


def test_saved_whois_with_ssh_is_refused() -> None:
    whois = str(TAILSCALE / "whois-homelab.json")
    result = _doctor("--ssh", "root@203.0.113.10", "--whois", whois)
    assert result.exit_code == 2
    assert result.stderr.startswith("--whois: goes with --status")


# ---------------------------------------------------------------------------
# --ssh, with a fake ssh on PATH that records its arguments
# ---------------------------------------------------------------------------

FAKE_SSH = """#!/bin/sh
# Records each call, then answers the remote command from fixture files.
{ for arg in "$@"; do printf '%s\\n' "$arg"; done; echo ---; } >> "$FAKE_SSH_LOG"
if [ -n "$FAKE_SSH_FAIL" ]; then
  echo "ssh: connect to host 203.0.113.10 port 22: Connection timed out" >&2
  exit 255
fi
for last; do :; done
case "$last" in
  *"tailscale status --json"*) cat "$FAKE_STATUS" ;;
  *"tailscale whois"*) cat "$FAKE_WHOIS" ;;
  *journalctl*) cat "$FAKE_JOURNAL" ;;
  *config/status.json*) cat "$FAKE_CONFIG_STATUS" ;;
  *ports.json*) [ -n "$FAKE_PORTS" ] && cat "$FAKE_PORTS" "$FAKE_PORTS_STATUS" ;;
  *"tailscale ping"*) echo "pong from homelab (100.64.0.2) via 198.51.100.22:41641 in 9ms" ;;
  *) echo "unexpected: $last" >&2; exit 9 ;;
esac
"""


@pytest.fixture
def fake_ssh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    ssh = bin_dir / "ssh"
    ssh.write_text(FAKE_SSH)
    ssh.chmod(ssh.stat().st_mode | stat.S_IXUSR)
    log = tmp_path / "ssh.log"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SSH_LOG", str(log))
    monkeypatch.setenv("FAKE_STATUS", _status("direct"))
    monkeypatch.setenv("FAKE_WHOIS", str(TAILSCALE / "whois-homelab.json"))
    monkeypatch.setenv("FAKE_JOURNAL", str(HEADSCALE / "journal-clean.log"))
    monkeypatch.setenv("FAKE_CONFIG_STATUS", str(_config_status(tmp_path, EXAMPLE_VERSION)))
    return log


EXAMPLE_VERSION = edge_config_object(load_config(EXAMPLE)).version


def _config_status(directory: Path, applied: str, **more: object) -> Path:
    """The edge's config agent status, as `cat` prints it over ssh."""
    path = directory / f"config-status-{applied}.json"
    at = "2026-12-07T11:00:00Z"
    status = {"applied": {"version": applied, "at": at}, "latest": {"version": applied, "seen": at}}
    path.write_text(json.dumps({**status, **more}))
    return path


def _calls(log: Path) -> list[list[str]]:
    calls = log.read_text().split("---\n")
    return [call.splitlines() for call in calls if call.strip()]


def test_ssh_warms_each_upstream_then_reads_status_whois_and_journal(fake_ssh: Path) -> None:
    result = _doctor("--ssh", "root@203.0.113.10")
    assert result.exit_code == 0, result.output
    calls = _calls(fake_ssh)
    assert [call[-1] for call in calls] == [
        "tailscale ping -c 1 --timeout 5s homelab.tail.example.net.",
        "tailscale status --json",
        "tailscale whois --json 100.64.0.2",
        "journalctl -u headscale --since -1h -o cat --no-pager",
        "cat /var/lib/homelab-tunnel/config/status.json",
        "cat /etc/homelab-tunnel/ports.json /run/homelab-tunnel/ports-status.json",
    ]
    for call in calls:
        assert call[:-1] == [
            *("-o", "BatchMode=yes", "-o", "ConnectTimeout=10"),
            *("-o", "StrictHostKeyChecking=accept-new"),
            *("-o", f"UserKnownHostsFile={EXAMPLE.with_suffix('.known_hosts')}"),
            "root@203.0.113.10",
        ]
    assert "1.90.2" in result.stdout  # the version came back through whois


def test_ssh_says_which_config_the_edge_runs(fake_ssh: Path) -> None:
    result = _doctor("--ssh", "root@203.0.113.10")
    assert f"ok: config: config {EXAMPLE_VERSION} applied at 2026-12-07T11:00:00Z" in result.stdout


def test_an_edge_on_another_config_than_this_file_is_a_problem(
    fake_ssh: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_CONFIG_STATUS", str(_config_status(tmp_path, "0123456789ab")))
    result = _doctor("--ssh", "root@203.0.113.10")
    assert result.exit_code == 1
    assert (
        f"problem: config: the edge runs config 0123456789ab, this config file renders "
        f"{EXAMPLE_VERSION}"
    ) in result.stdout


def test_a_refused_config_is_a_problem_with_its_reason(
    fake_ssh: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    refused = {"version": "fedcba987654", "reason": "policy.hujson refused", "at": "x"}
    status = _config_status(tmp_path, EXAMPLE_VERSION, refused=refused)
    monkeypatch.setenv("FAKE_CONFIG_STATUS", str(status))
    result = _doctor("--ssh", "root@203.0.113.10")
    assert result.exit_code == 1
    assert "config fedcba987654 refused at x: policy.hujson refused; the edge keeps" in (
        result.stdout
    )


def test_ssh_pings_every_upstream_once(fake_ssh: Path) -> None:
    result = _doctor("--ssh", "root@203.0.113.10", "--upstream", "100.64.0.7")
    assert result.exit_code == 1  # 100.64.0.7 is not in the tailnet
    pings = _calls(fake_ssh)[0][-1]
    assert pings == (
        "tailscale ping -c 1 --timeout 5s homelab.tail.example.net.; "
        "tailscale ping -c 1 --timeout 5s 100.64.0.7"
    )


def test_ssh_reports_a_relayed_upstream(fake_ssh: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_STATUS", _status("derp"))
    monkeypatch.setenv("FAKE_JOURNAL", str(HEADSCALE / "journal-0.29-text.log"))
    result = _doctor("--ssh", "root@203.0.113.10", "--json")
    assert result.exit_code == 1
    document = json.loads(result.stdout)
    assert any(
        finding["severity"] == "problem" and "via DERP region fra" in finding["message"]
        for finding in document["findings"]
    )
    assert [r["client_version"] for r in document["rejections"]] == ["v1.36", "v1.74"]


def test_unreachable_edge_is_bad_input_with_a_hint(
    fake_ssh: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_SSH_FAIL", "1")
    result = _doctor("--ssh", "root@203.0.113.10")
    assert result.exit_code == 2
    assert "Connection timed out" in result.stderr
    assert "ssh_allowed_cidrs" in result.stderr
    assert "Traceback" not in result.output


def test_malformed_remote_status_is_bad_input(
    fake_ssh: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("tailscaled is not running\n")
    monkeypatch.setenv("FAKE_STATUS", str(broken))
    result = _doctor("--ssh", "root@203.0.113.10")
    assert result.exit_code == 2
    assert result.stderr.startswith("ssh root@203.0.113.10: not JSON")


def test_ssh_destination_that_looks_like_an_option_is_refused(fake_ssh: Path) -> None:
    result = _doctor("--ssh", "-oProxyCommand=touch /tmp/x")
    assert result.exit_code == 2
    assert "not an ssh destination" in result.stderr
    assert not fake_ssh.exists()


def test_ssh_output_that_is_not_utf8_is_read_around(
    fake_ssh: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = tmp_path / "journal.log"
    journal.write_bytes(b"\x80\xff odd\n" + (HEADSCALE / "journal-0.29-text.log").read_bytes())
    status = tmp_path / "status.json"
    status.write_bytes(
        Path(_status("direct")).read_bytes().replace(b'"homelab"', b'"home\xfflab"', 1)
    )
    monkeypatch.setenv("FAKE_JOURNAL", str(journal))
    monkeypatch.setenv("FAKE_STATUS", str(status))
    result = _doctor("--ssh", "root@203.0.113.10")
    assert "Traceback" not in result.output
    assert result.exit_code == 1, result.output
    assert "Headscale rejected Tailscale 1.36" in result.stdout


GAME = {"protocol": "udp", "port": "27015", "upstream": "homelab",
        "upstream_host": "homelab.tail.example.net", "upstream_port": 27015}  # fmt: skip


def _ports_on_the_edge(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, address: str | None
) -> None:
    """The edge's ports.json and its port agent's status, as `cat` prints them over ssh."""
    ports, status = tmp_path / "ports.json", tmp_path / "ports-status.json"
    ports.write_text(json.dumps([GAME], indent=1))
    status.write_text(json.dumps({"error": None, "ports": [{**GAME, "address": address}]}))
    monkeypatch.setenv("FAKE_PORTS", str(ports))
    monkeypatch.setenv("FAKE_PORTS_STATUS", str(status))


def test_ssh_says_where_each_forwarded_port_goes(
    fake_ssh: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _ports_on_the_edge(tmp_path, monkeypatch, "100.64.0.2")
    result = _doctor("--ssh", "root@203.0.113.10")
    assert result.exit_code == 0, result.output
    assert "ok: port udp 27015: forwarded to homelab:27015 (100.64.0.2)" in result.stdout


def test_ssh_names_a_forwarded_port_with_no_upstream_address_as_a_problem(
    fake_ssh: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _ports_on_the_edge(tmp_path, monkeypatch, None)
    result = _doctor("--ssh", "root@203.0.113.10")
    assert result.exit_code == 1
    assert (
        "problem: port udp 27015: not forwarded: homelab.tail.example.net has no tailnet address"
        in result.stdout
    )
