"""What the config agent's status says, as findings: the health agent's and doctor's words.

The agent (edge/config_agent.py) keeps status.json on the state volume: the
version it applied, the newest one it saw in the bucket, and why it did not
apply one (refused, waiting for DNS, the bucket unreachable). A version
Terraform wrote that the edge has not applied after a few minutes is a
problem: the edge serves something other than what the plan said.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from homelab_tunnel.findings import Finding, ok, problem, warning

STATUS_PATH = Path("/var/lib/homelab-tunnel/config/status.json")
STATUS_COMMAND = ("cat", str(STATUS_PATH))
# Polls are 10 s apart; DNS of a new name may take a few minutes to be seen.
NOT_APPLIED_AFTER = timedelta(minutes=5)
# Consecutive polls the bucket did not answer (each already tried 3 times over
# 3 s) before it is worth a warning: one failure is a blip, three are about
# 40 s of silence. Counted by the agent, so a warning never waits on a clock.
UNREACHABLE_POLLS = 3


def read_status(text: str) -> dict[str, Any]:
    try:
        status = json.loads(text)
    except ValueError:
        return {}
    return status if isinstance(status, dict) else {}


def _at(value: Any) -> datetime | None:
    try:
        return datetime.strptime(str(value), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None


def _minutes(delta: timedelta) -> str:
    return f"{int(delta.total_seconds() // 60)} min"


def bucket_unreachable(status: Mapping[str, Any]) -> bool:
    """The agent's last UNREACHABLE_POLLS checks of the bucket all failed."""
    polls = (status.get("unreachable") or {}).get("polls")
    return isinstance(polls, int) and polls >= UNREACHABLE_POLLS


def config_findings(
    status: Mapping[str, Any], now: datetime, *, expected: str | None = None
) -> list[Finding]:
    """`expected`: the version the operator's config renders (doctor knows it, the edge not)."""
    applied = status.get("applied") or {}
    latest = status.get("latest") or {}
    refused = status.get("refused") or {}
    version = applied.get("version")
    if not version:
        return [warning("config", "no config applied yet (journalctl -u homelab-tunnel-bootstrap)")]
    found: list[Finding] = []
    serving = f"the edge keeps serving config {version}"
    if refused:
        found.append(
            problem(
                "config",
                f"config {refused.get('version', '?')} refused at {refused.get('at', '?')}: "
                f"{refused.get('reason', 'no reason recorded')}; {serving}",
            )
        )
    elif latest.get("version") and latest.get("version") != version:
        seen = _at(latest.get("seen"))
        waiting = status.get("waiting")
        because = f" (waiting for {waiting})" if waiting else ""
        if seen is not None and now - seen > NOT_APPLIED_AFTER:
            found.append(
                problem(
                    "config",
                    f"config {latest['version']} from the bucket not applied after "
                    f"{_minutes(now - seen)}{because}; {serving}",
                )
            )
        else:
            found.append(warning("config", f"config {latest['version']} being applied{because}"))
    unreachable = status.get("unreachable") or {}
    if bucket_unreachable(status):
        polls = unreachable.get("polls")
        found.append(
            warning(
                "config",
                f"config bucket unreachable since {unreachable.get('since', '?')} ({polls} "
                f"checks in a row; {unreachable.get('error', '?')}); {serving}, the last it "
                "applied",
            )
        )
    if expected is not None and expected != version and not found:
        found.append(
            problem(
                "config",
                f"the edge runs config {version}, this config file renders {expected}: "
                "apply it (or it was applied and the edge has not caught up)",
            )
        )
    if not found:
        found.append(ok("config", f"config {version} applied at {applied.get('at', '?')}"))
    return found


def status_findings(path: Path, now: datetime) -> list[Finding]:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return [warning("config", f"no config status yet ({path}): the edge is still booting")]
    except OSError as exc:
        return [warning("config", f"config status unreadable: {exc.strerror or exc}")]
    return config_findings(read_status(text), now)
