"""`check --ssh` and `backups list|restore|status`: the edge's own answers, asked over ssh.

A stand-in `ssh` on PATH records what it was asked to run and answers as the
edge's upgrade guard and restore-state.sh would.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from support.config import write_config
from typer.testing import CliRunner

from homelab_tunnel.cli import app

SSH = """#!/bin/sh
printf '%s\\n' "$*" >> "$SSH_CALLS"
printf '%s' "$EDGE_STDOUT"
printf '%s' "$EDGE_STDERR" >&2
exit "${EDGE_EXIT:-0}"
"""


@pytest.fixture
def edge(tmp_path: Path) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "ssh").write_text(SSH)
    (bin_dir / "ssh").chmod(0o755)
    return {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "SSH_CALLS": str(tmp_path / "calls"),
        "COLUMNS": "200",
        "NO_COLOR": "1",
    }


def _cli(env: dict[str, str], *args: str, **answer: str) -> Any:
    return CliRunner(env={**env, **answer}).invoke(app, list(args))


def _calls(env: dict[str, str]) -> list[str]:
    path = Path(env["SSH_CALLS"])
    return path.read_text().splitlines() if path.exists() else []


def test_check_takes_the_running_version_from_the_edge(
    edge: dict[str, str], tmp_path: Path
) -> None:
    config = write_config(tmp_path)
    result = _cli(
        edge, "check", "--config", str(config), "--ssh", "root@203.0.113.10", EDGE_STDOUT="0.28.1\n"
    )
    assert result.exit_code == 0, result.output
    assert (
        "ok: upgrade: Headscale 0.28.1 -> 0.29.2 is allowed (one minor release up)" in result.stdout
    )
    (call,) = _calls(edge)
    assert call.endswith(
        "root@203.0.113.10 env PYTHONPATH=/usr/local/lib/homelab-tunnel python3 -m "
        "homelab_tunnel.edge.upgrade_guard show"
    )


def test_check_refuses_a_skip_from_the_version_the_edge_reports(
    edge: dict[str, str], tmp_path: Path
) -> None:
    config = write_config(tmp_path)
    result = _cli(
        edge,
        "check",
        "--config",
        str(config),
        "--ssh",
        "root@203.0.113.10",
        EDGE_STDOUT="v0.27.1\n",
    )
    assert result.exit_code == 1
    assert "problem: upgrade: Headscale 0.27.1 -> 0.29.2 skips 1 minor release(s)" in result.stdout


def test_a_fresh_volume_has_no_running_version(edge: dict[str, str], tmp_path: Path) -> None:
    config = write_config(tmp_path)
    result = _cli(
        edge, "check", "--config", str(config), "--ssh", "root@203.0.113.10",
        EDGE_STDOUT="none (fresh volume)\n",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (
        "note: upgrade: no Headscale has run on the volume of root@203.0.113.10 yet"
        in result.stdout
    )


def test_a_garbled_answer_is_bad_input_not_a_pass(edge: dict[str, str], tmp_path: Path) -> None:
    config = write_config(tmp_path)
    result = _cli(
        edge, "check", "--config", str(config), "--ssh", "root@203.0.113.10", EDGE_STDOUT="hello\n"
    )
    assert result.exit_code == 2
    assert (
        result.stderr
        == "ssh root@203.0.113.10: the edge answered 'hello', not a Headscale version\n"
    )


def test_upgrade_from_and_ssh_exclude_each_other(edge: dict[str, str], tmp_path: Path) -> None:
    config = write_config(tmp_path)
    result = _cli(
        edge, "check", "--config", str(config), "--ssh", "root@x", "--upgrade-from", "0.28.1"
    )
    assert result.exit_code == 2
    assert result.stderr == "--ssh: give --upgrade-from or --ssh, not both\n"
    assert _calls(edge) == []


def test_backups_list_relays_the_edges_answer(edge: dict[str, str]) -> None:
    listing = "database: 2026-11-28T21:00:00Z .. 2026-11-29T21:59:58Z\n"
    result = _cli(edge, "backups", "list", "--ssh", "root@203.0.113.10", EDGE_STDOUT=listing)
    assert result.exit_code == 0, result.output
    assert result.stdout == listing
    assert _calls(edge)[0].endswith(
        "root@203.0.113.10 /usr/local/lib/homelab-tunnel/restore-state.sh --list"
    )


def test_backups_list_shows_control_characters_from_the_edge_escaped(
    edge: dict[str, str],
) -> None:
    listing = "keys: 2026-11-29T21:00:00Z 3 homelab-edge/keys/evil\x1b]0;pwned\x07\n"
    result = _cli(
        edge, "backups", "list", "--ssh", "root@x", EDGE_STDOUT=listing,
        EDGE_EXIT="1", EDGE_STDERR="restore-state: FAILED: \x1b[2J\n",
    )  # fmt: skip
    assert result.exit_code == 1
    assert result.stdout == (
        "keys: 2026-11-29T21:00:00Z 3 homelab-edge/keys/evil\\x1b]0;pwned\\x07\n"
        "ssh root@x: restore-state: FAILED: \\x1b[2J\n"
    )


@pytest.mark.parametrize(("force", "tail"), [(False, ""), (True, " --force")])
def test_backups_restore_passes_the_time_in_utc(
    edge: dict[str, str], force: bool, tail: str
) -> None:
    args = ["backups", "restore", "--ssh", "root@203.0.113.10", "--at", "2026-11-29T23:30:00+01:00"]
    result = _cli(edge, *args, *(["--force"] if force else []), EDGE_STDOUT="restored\n")
    assert result.exit_code == 0, result.output
    assert _calls(edge)[0].endswith(
        "/usr/local/lib/homelab-tunnel/restore-state.sh --at 2026-11-29T22:30:00Z" + tail
    )


@pytest.mark.parametrize(
    ("when", "sent"),
    [
        ("0001-01-01T01:00:00+01:00", "0001-01-01T00:00:00Z"),  # the earliest UTC time there is
        ("2026-11-29T23:30:00.75+01:00", "2026-11-29T22:30:00Z"),
    ],
)
def test_the_time_sent_to_the_edge_is_always_full_rfc_3339(
    edge: dict[str, str], when: str, sent: str
) -> None:
    result = _cli(edge, "backups", "restore", "--ssh", "root@x", "--at", when, EDGE_STDOUT="ok\n")
    assert result.exit_code == 0, result.output
    assert _calls(edge)[0].endswith(f"restore-state.sh --at {sent}")


def test_a_refused_restore_exits_1_with_the_edges_reason(edge: dict[str, str]) -> None:
    reason = "the volume holds a database; add --force to move it aside and restore\n"
    args = ["backups", "restore", "--ssh", "root@203.0.113.10", "--at", "2026-11-29T21:00:00Z"]
    result = _cli(edge, *args, EDGE_EXIT="1", EDGE_STDERR=reason)
    assert result.exit_code == 1
    assert result.stdout.endswith(f"ssh root@203.0.113.10: {reason.strip()}\n")


def test_a_dropped_connection_points_at_backups_status(edge: dict[str, str]) -> None:
    """ssh exits 255 when the connection drops: the restore goes on on the edge."""
    args = ["backups", "restore", "--ssh", "root@203.0.113.10", "--at", "2026-11-29T21:00:00Z"]
    started = "restore-state: running as homelab-tunnel-restore-x; ...\n"
    result = _cli(edge, *args, EDGE_STDOUT=started, EDGE_EXIT="255",
                  EDGE_STDERR="Connection to 203.0.113.10 closed by remote host.")  # fmt: skip
    assert result.exit_code == 1
    assert result.stdout.splitlines()[0] == started.strip()
    assert result.stdout.splitlines()[-1] == (
        "The restore goes on on the edge whatever happened to the connection: "
        "`homelab-tunnel backups status --ssh root@203.0.113.10` tells how it ended."
    )


def test_a_refusal_from_the_edge_does_not_speak_of_the_connection(edge: dict[str, str]) -> None:
    """The twin: exit 1 is the restore's own answer, not a dropped connection."""
    args = ["backups", "restore", "--ssh", "root@203.0.113.10", "--at", "2026-11-29T21:00:00Z"]
    result = _cli(edge, *args, EDGE_EXIT="1", EDGE_STDOUT="restore-state: FAILED: no seal\n")
    assert result.exit_code == 1
    assert "whatever happened to the connection" not in result.stdout


def test_backups_status_relays_the_last_restores_outcome(edge: dict[str, str]) -> None:
    outcome = "restore-state: restored the database as of 2026-11-29T21:00:00Z; ...\n"
    result = _cli(edge, "backups", "status", "--ssh", "root@203.0.113.10", EDGE_STDOUT=outcome)
    assert (result.exit_code, result.stdout) == (0, outcome)
    assert _calls(edge)[0].endswith(
        "root@203.0.113.10 /usr/local/lib/homelab-tunnel/restore-state.sh --status"
    )


@pytest.mark.parametrize(
    "when",
    [
        "yesterday",
        "2026-11-29 21:00",
        "2999-01-01T00:00:00Z",
        "0001-01-01T00:00:00+01:00",
        "9999-12-31T23:59:59-01:00",
    ],
)
def test_a_point_in_time_must_be_a_past_time_with_a_zone(edge: dict[str, str], when: str) -> None:
    result = _cli(edge, "backups", "restore", "--ssh", "root@x", "--at", when)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"--at: {when!r}")
    assert _calls(edge) == []


def test_a_guard_that_cannot_tell_is_bad_input_not_a_pass(
    edge: dict[str, str], tmp_path: Path
) -> None:
    config = write_config(tmp_path)
    result = _cli(
        edge, "check", "--config", str(config), "--ssh", "root@203.0.113.10",
        EDGE_EXIT="2", EDGE_STDERR="upgrade guard: database is locked\n",
    )  # fmt: skip
    assert result.exit_code == 2
    assert result.stderr == (
        "ssh root@203.0.113.10: cannot read the running Headscale version: "
        "upgrade guard: database is locked\n"
    )
