"""doctor from the operator's side: evidence from saved files, stdin, or the edge over ssh.

doctor.py judges and must stay standard-library only for the edge; this module
adds what only the CLI needs: the config, reading files, ssh, and turning every
unreadable or malformed source into `InputError` naming it (exit 2).
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from homelab_tunnel import doctor
from homelab_tunnel.config import TunnelConfig
from homelab_tunnel.errors import InputError
from homelab_tunnel.remote import ssh_runner
from homelab_tunnel.versions import HEADSCALE_VERSION

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
) -> doctor.Report:
    """Gather the evidence from exactly one of `status` (a file or '-') and `ssh`, then judge it."""
    if (status is None) == (ssh is None):
        raise InputError("doctor", ["give exactly one of --status FILE (or - for stdin) and --ssh"])
    if ssh is not None:
        if whois is not None:
            raise InputError("--whois", ["goes with --status; --ssh reads whois on the edge"])
        source, evidence = f"ssh {ssh}", _from_edge(ssh, upstreams)
    else:
        assert status is not None
        source = "stdin" if status == "-" else status
        evidence = doctor.Evidence(
            status=read_text(status), whois=read_text(str(whois)) if whois else ""
        )
    if journal is not None:
        evidence = dataclasses.replace(evidence, journal=read_text(str(journal)))
    document = _checked(source, doctor.parse_status, evidence.status)
    peer_versions = None
    if whois is not None or ssh is not None:
        peer_versions = _checked(str(whois or source), doctor.parse_whois, evidence.whois)
    try:
        report = doctor.diagnose(
            document,
            upstreams=upstreams,
            headscale_version=config.headscale.version if config else HEADSCALE_VERSION,
            now=now,
            peer_versions=peer_versions,
            journal=evidence.journal,
        )
    except doctor.SourceError as exc:
        raise InputError(source, [str(exc)]) from None
    report.warnings.extend(evidence.notes)
    if not upstreams:
        report.notes.append("no site upstreams given (--config or --upstream): paths not judged")
    return report


def read_text(source: str) -> str:
    """A file's text, or stdin for '-'; unreadable input is bad input naming the file."""
    if source == "-":
        return sys.stdin.read()
    try:
        return Path(source).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(source, ["no such file"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(source, [f"cannot read: {exc}"]) from None


def _from_edge(target: str, upstreams: Sequence[str]) -> doctor.Evidence:
    try:
        run = ssh_runner(target)
    except ValueError as exc:
        raise InputError("--ssh", [str(exc)]) from None
    try:
        return doctor.collect(run, upstreams=upstreams, journal_since=JOURNAL_SINCE, source=target)
    except doctor.SourceError as exc:
        raise InputError(f"ssh {target}", [str(exc)]) from None


def _checked(source: str, parse: Callable[[str], T], text: str) -> T:
    try:
        return parse(text)
    except doctor.SourceError as exc:
        raise InputError(source, [str(exc)]) from None
