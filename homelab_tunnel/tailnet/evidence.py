"""doctor from the operator's side: evidence from saved files, stdin, or the edge over ssh.

edge/ judges and must stay standard-library only; this module adds what only
the CLI needs: the config, reading files, ssh, and turning every unreadable
or malformed source into `InputError` naming it (exit 2).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from homelab_tunnel.config import TunnelConfig
from homelab_tunnel.edge.collect import Evidence, Runner, collect
from homelab_tunnel.edge.config_status import STATUS_COMMAND, config_findings, read_status
from homelab_tunnel.edge.forwards import port_findings, read_forwards
from homelab_tunnel.edge.port_agent import PORTS_FILE
from homelab_tunnel.edge.port_agent import STATUS_FILE as PORTS_STATUS_FILE
from homelab_tunnel.edge.status import SourceError, parse_status, parse_whois
from homelab_tunnel.edge.verdicts import Report, diagnose
from homelab_tunnel.edge.versions import HEADSCALE_VERSION
from homelab_tunnel.errors import InputError
from homelab_tunnel.findings import Finding, note, warning
from homelab_tunnel.inputs import label, read_text
from homelab_tunnel.payload import edge_config_object
from homelab_tunnel.tailnet.ssh import ssh_runner

T = TypeVar("T")

# The CLI looks further back than the 5-minute timer: it runs when someone asks.
JOURNAL_SINCE = "-1h"


def examine(
    *,
    config: TunnelConfig | None,
    upstreams: Sequence[str],
    status: str | None,
    ssh: str | None,
    whois: Path | None,
    journal: Path | None,
    now: datetime,
    known_hosts: Path = Path("homelab-tunnel.known_hosts"),
) -> Report:
    """Gather the evidence from exactly one of `status` (a file or '-') and `ssh`, then judge it."""
    source, evidence, run = _gather(
        upstreams=upstreams, status=status, ssh=ssh, whois=whois, known_hosts=known_hosts
    )
    if journal is not None:
        # A journal is a log: odd bytes (a client's name, a binary field) are replaced.
        evidence = dataclasses.replace(evidence, journal=read_text(str(journal), lenient=True))
    document = _checked(source, parse_status, evidence.status)
    peer_versions = None
    if whois is not None or ssh is not None:
        peer_versions = _checked(str(whois or source), parse_whois, evidence.whois)
    try:
        report = diagnose(
            document,
            upstreams=upstreams,
            headscale_version=config.headscale.version if config else HEADSCALE_VERSION,
            now=now,
            peer_versions=peer_versions,
            journal=evidence.journal,
        )
    except SourceError as exc:
        raise InputError(source, [str(exc)]) from None
    report.findings += [warning("", text) for text in evidence.notes]
    if run is not None:
        report.findings += _config_versions(run, config, now)
        report.findings += _forwarded_ports(run)
    if not upstreams:
        report.findings.append(
            note("", "no site upstreams given (--config or --upstream): paths not judged")
        )
    return report


def _config_versions(run: Runner, config: TunnelConfig | None, now: datetime) -> list[Finding]:
    """Which config version the edge runs, which one Terraform wrote, and this file's."""
    text = run([STATUS_COMMAND], 10.0).stdout
    expected = edge_config_object(config).version if config is not None else None
    return config_findings(read_status(text), now, expected=expected)


def _forwarded_ports(run: Runner) -> list[Finding]:
    """The edge's port list and what its port agent forwards, judged as the health agent does.

    One ssh round trip: `cat` prints the list (a JSON array; absent on an edge
    without ports) and then the agent's status (a JSON object).
    """
    text = run([("cat", PORTS_FILE, PORTS_STATUS_FILE)], 10.0).stdout
    documents: list[object] = []
    decoder, position = json.JSONDecoder(), 0
    try:
        while text[position:].strip():
            position += len(text[position:]) - len(text[position:].lstrip())
            document, position = decoder.raw_decode(text, position)
            documents.append(document)
    except ValueError:
        return [warning("ports", f"{PORTS_FILE} or {PORTS_STATUS_FILE} on the edge is not JSON")]
    listed = next((doc for doc in documents if isinstance(doc, list)), None)
    status = next((doc for doc in documents if isinstance(doc, dict)), None)
    if listed is None:
        return []  # no ports configured (or an edge from before forwarded ports)
    try:
        forwards = read_forwards(json.dumps(listed))
    except ValueError as exc:
        return [warning("ports", f"{PORTS_FILE} on the edge: {exc}")]
    return port_findings(forwards, status)


def _gather(
    *,
    upstreams: Sequence[str],
    status: str | None,
    ssh: str | None,
    whois: Path | None,
    known_hosts: Path,
) -> tuple[str, Evidence, Runner | None]:
    if (status is None) == (ssh is None):
        raise InputError("doctor", ["give exactly one of --status FILE (or - for stdin) and --ssh"])
    if ssh is not None:
        if whois is not None:
            raise InputError("--whois", ["goes with --status; --ssh reads whois on the edge"])
        run, evidence = _from_edge(ssh, upstreams, known_hosts)
        return f"ssh {ssh}", evidence, run
    assert status is not None
    evidence = Evidence(status=read_text(status), whois=read_text(str(whois)) if whois else "")
    return label(status), evidence, None


def _from_edge(target: str, upstreams: Sequence[str], known_hosts: Path) -> tuple[Runner, Evidence]:
    try:
        run = ssh_runner(target, known_hosts)
    except ValueError as exc:
        raise InputError("--ssh", [str(exc)]) from None
    try:
        return run, collect(run, upstreams=upstreams, journal_since=JOURNAL_SINCE, source=target)
    except SourceError as exc:
        raise InputError(f"ssh {target}", [str(exc)]) from None


def _checked(source: str, parse: Callable[[str], T], text: str) -> T:
    try:
        return parse(text)
    except SourceError as exc:
        raise InputError(source, [str(exc)]) from None
