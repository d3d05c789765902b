"""The config agent's status in the health agent's and doctor's words."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from homelab_tunnel.edge.config_status import (
    UNREACHABLE_POLLS,
    config_findings,
    status_findings,
)
from homelab_tunnel.findings import Severity

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def _at(minutes_ago: float) -> str:
    return (NOW - timedelta(minutes=minutes_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _status(**more: Any) -> dict[str, Any]:
    applied = {"version": "aaaaaaaaaaaa", "at": _at(60)}
    return {"applied": applied, "latest": {"version": "aaaaaaaaaaaa", "seen": _at(60)}, **more}


def _lines(status: dict[str, Any], **kwargs: Any) -> list[str]:
    return [f.line() for f in config_findings(status, NOW, **kwargs)]


def test_the_applied_version_is_said() -> None:
    assert _lines(_status()) == [f"ok: config: config aaaaaaaaaaaa applied at {_at(60)}"]


def test_a_refused_version_is_a_problem_naming_why_and_what_still_serves() -> None:
    refused = {
        "version": "bbbbbbbbbbbb",
        "reason": "Caddyfile refused by `caddy validate`: x",
        "at": _at(1),
    }
    (line,) = _lines(_status(refused=refused))
    assert line == (
        f"problem: config: config bbbbbbbbbbbb refused at {_at(1)}: Caddyfile refused by "
        "`caddy validate`: x; the edge keeps serving config aaaaaaaaaaaa"
    )


def test_a_newer_version_is_fine_for_a_few_minutes_then_a_problem() -> None:
    fresh = _status(latest={"version": "cccccccccccc", "seen": _at(1)}, waiting="DNS of x -> y")
    assert [f.severity for f in config_findings(fresh, NOW)] == [Severity.WARNING]
    late = _status(latest={"version": "cccccccccccc", "seen": _at(6)}, waiting="DNS of x -> y")
    (line,) = _lines(late)
    assert line.startswith(
        "problem: config: config cccccccccccc from the bucket not applied after 6 min"
    )
    assert "(waiting for DNS of x -> y)" in line


def test_an_unreachable_bucket_warns_after_three_failed_checks_in_a_row() -> None:
    brief = _status(unreachable={"since": _at(1), "polls": UNREACHABLE_POLLS - 1, "error": "x"})
    assert [f.severity for f in config_findings(brief, NOW)] == [Severity.OK]
    long = _status(unreachable={"since": _at(1), "polls": UNREACHABLE_POLLS, "error": "no answer"})
    (line,) = _lines(long)
    assert line == (
        f"warning: config: config bucket unreachable since {_at(1)} (3 checks in a row; no "
        "answer); the edge keeps serving config aaaaaaaaaaaa, the last it applied"
    )


def test_doctor_compares_with_the_version_the_config_file_renders() -> None:
    assert _lines(_status(), expected="aaaaaaaaaaaa")[0].startswith("ok:")
    (line,) = _lines(_status(), expected="dddddddddddd")
    assert line.startswith("problem: config: the edge runs config aaaaaaaaaaaa, this config file")


def test_no_status_yet_is_a_warning(tmp_path: Path) -> None:
    (finding,) = status_findings(tmp_path / "missing.json", NOW)
    assert finding.severity is Severity.WARNING
    (finding,) = status_findings(_write(tmp_path, "{}"), NOW)
    assert (
        finding.line()
        == "warning: config: no config applied yet (journalctl -u homelab-tunnel-bootstrap)"
    )


def _write(directory: Path, text: str) -> Path:
    path = directory / "status.json"
    path.write_text(text)
    return path
