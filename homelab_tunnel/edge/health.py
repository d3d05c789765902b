"""The edge's health agent, run by homelab-tunnel-health.timer every 5 minutes.

`python3 -m homelab_tunnel.edge.health`: warm each upstream's path (the
sites' and the forwarded ports'), judge paths, client versions and Headscale's
journal exactly as `doctor` does, see that backups run and tell of a restore,
that the config Terraform wrote last is the one applied, that every forwarded
port goes to its upstream's address, log one line per finding and a
summary to the journal, and tell the webhook when anything changed. Exit 1
when there are problems.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from homelab_tunnel.edge import versions
from homelab_tunnel.edge.collect import Runner, collect, run_local
from homelab_tunnel.edge.config_status import STATUS_PATH, status_findings
from homelab_tunnel.edge.forwards import port_findings, read_forwards
from homelab_tunnel.edge.port_agent import PORTS_FILE
from homelab_tunnel.edge.port_agent import STATUS_FILE as PORTS_STATUS_FILE
from homelab_tunnel.edge.status import SourceError, parse_status, parse_whois
from homelab_tunnel.edge.verdicts import diagnose
from homelab_tunnel.edge.webhook import notify
from homelab_tunnel.findings import Finding, Severity, count_line, problem, warning

# The timer runs every 5 minutes, give or take its 1 minute accuracy: each run
# reads the journal since the previous one could have started.
HEALTH_JOURNAL_SINCE = "-6min"
# Written by bootstrap.sh: "ready: ...", "failed at step NAME: why" or (the loader's)
# "failed: why".
BOOTSTRAP_STATUS = "/var/lib/homelab-tunnel/bootstrap-status"
# Written by restore-state.sh: "<UTC time> <what was restored>".
RESTORED = "/var/lib/homelab-tunnel/restored"
RESTORE_REPORTED_FOR = timedelta(hours=24)
# Left by a restore that could not put the previous state back: Headscale refuses to start.
RESTORING = "/var/lib/headscale/.homelab-tunnel-restoring"
LITESTREAM_UNIT = "homelab-tunnel-litestream"
PORTS_UNIT = "homelab-tunnel-ports"


def bootstrap_findings(path: Path) -> list[Finding]:
    """A failed or unfinished bootstrap is the first thing a person must hear of."""
    try:
        status = path.read_text(encoding="utf-8", errors="replace").strip()
    except FileNotFoundError:
        return [
            warning("bootstrap", "has not finished yet (journalctl -u homelab-tunnel-bootstrap)")
        ]
    except OSError as exc:
        return [warning("bootstrap", f"status unreadable: {exc.strerror or exc}")]
    # "failed: why" (the software loader) or "failed at step NAME: why" (a step).
    if status.startswith(("failed:", "failed at step ")):
        return [
            problem("bootstrap", f"{status} (retrying; journalctl -u homelab-tunnel-bootstrap)")
        ]
    return []


def restore_findings(path: Path, now: datetime) -> list[Finding]:
    """A restore from the bucket, reported as a warning for a day so the webhook hears of it."""
    try:
        when, _, what = path.read_text(encoding="utf-8", errors="replace").strip().partition(" ")
        at = datetime.strptime(when, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except (OSError, ValueError):
        return []
    if now - at > RESTORE_REPORTED_FOR:
        return []
    return [warning("backup", f"restored from backup: {what} at {when}")]


def unfinished_restore_findings(path: Path) -> list[Finding]:
    """A restore that stopped half-way: nothing starts Headscale until someone acts."""
    try:
        mark = path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return []
    return [
        problem(
            "backup",
            f"a restore did not finish ({mark}): Headscale stays stopped until you act "
            "(restore-state.sh --status says what to do)",
        )
    ]


def litestream_findings(run: Runner) -> list[Finding]:
    """Backups on, edge ready: the unit streaming the database must be running."""
    state = run([("systemctl", "is-active", LITESTREAM_UNIT)], 10.0).stdout.strip() or "unknown"
    if state == "active":
        return []
    return [
        problem(
            "backup",
            f"{LITESTREAM_UNIT} is {state}: Headscale's database is not being backed up "
            f"(journalctl -u {LITESTREAM_UNIT})",
        )
    ]


def ports_findings(config: Path, status: Path, run: Runner) -> list[Finding]:
    """Each forwarded port: to its upstream's current address, or why not."""
    try:
        forwards = read_forwards(config.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        return [problem("ports", f"{config}: {exc}")]
    if not forwards:
        return []
    try:
        recorded = json.loads(status.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        recorded = None
    found = port_findings(forwards, recorded if isinstance(recorded, dict) else None)
    state = run([("systemctl", "is-active", PORTS_UNIT)], 10.0).stdout.strip() or "unknown"
    if state != "active":
        found.append(
            problem(
                "ports",
                f"{PORTS_UNIT} is {state}: a forwarded port does not follow its upstream to a "
                f"new address (journalctl -u {PORTS_UNIT})",
            )
        )
    return found


def health(env: Mapping[str, str], run: Runner = run_local, now: datetime | None = None) -> int:
    """One health run on the edge: journal lines, an optional webhook, exit 1 on problems."""
    upstreams = env.get("HEALTH_UPSTREAMS", "").split()
    headscale_version = env.get("HEADSCALE_VERSION") or versions.HEADSCALE_VERSION
    try:
        versions.parse_version(headscale_version)
    except ValueError as exc:
        print(f"warning: HEADSCALE_VERSION: {exc}; judging against {versions.HEADSCALE_VERSION}")
        headscale_version = versions.HEADSCALE_VERSION
    host = socket.gethostname()
    now = now or datetime.now(UTC)
    findings = bootstrap_findings(Path(env.get("BOOTSTRAP_STATUS_FILE") or BOOTSTRAP_STATUS))
    if env.get("BACKUP_ENABLED") == "true" and not findings:
        findings += litestream_findings(run)
    findings += restore_findings(Path(env.get("RESTORED_FILE") or RESTORED), now)
    findings += status_findings(Path(env.get("CONFIG_STATUS_FILE") or STATUS_PATH), now)
    findings += unfinished_restore_findings(Path(env.get("RESTORING_FILE") or RESTORING))
    findings += ports_findings(
        Path(env.get("PORTS_FILE") or PORTS_FILE),
        Path(env.get("PORTS_STATUS_FILE") or PORTS_STATUS_FILE),
        run,
    )
    healthy_summary = ""
    try:
        evidence = collect(
            run, upstreams=upstreams, journal_since=HEALTH_JOURNAL_SINCE, source=host
        )
        report = diagnose(
            parse_status(evidence.status),
            upstreams=upstreams,
            headscale_version=headscale_version,
            now=now,
            peer_versions=parse_whois(evidence.whois),
            journal=evidence.journal,
        )
        findings += [*report.findings, *(warning("", n) for n in evidence.notes)]
        healthy_summary = report.summary()
    except SourceError as exc:
        findings.append(problem("", f"cannot read the tailnet state: {exc}"))
    if not upstreams:
        findings.append(warning("", "HEALTH_UPSTREAMS is empty: no site upstream is checked"))
    shown = [f for f in findings if f.severity in (Severity.PROBLEM, Severity.WARNING)]
    for finding in shown:
        print(finding.line())
    bad = any(f.severity is Severity.PROBLEM for f in findings)
    summary = count_line(findings) if bad else healthy_summary
    print(f"homelab-tunnel health: {'problems' if bad else 'ok'}: {summary}")
    url = env.get("HEALTH_WEBHOOK_URL", "").strip()
    if url:
        state = env.get("STATE_DIRECTORY", "").split(":")[0]
        notify(url, host, findings, Path(state) if state else None)
    return 1 if bad else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 -m homelab_tunnel.edge.health",
        description="Tailnet health check that runs on the edge: warm each upstream's path, "
        "judge paths, client versions and Headscale's journal; configured by "
        "HEALTH_UPSTREAMS, HEALTH_WEBHOOK_URL, HEADSCALE_VERSION, BACKUP_ENABLED.",
    )
    parser.parse_args(argv)
    return health(os.environ)


if __name__ == "__main__":
    sys.exit(main())
