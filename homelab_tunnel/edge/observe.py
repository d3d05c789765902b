"""One look at everything the edge is doing, for `homelab-tunnel status` and the metrics exporter.

A `Sample` holds what each source said at one moment: Caddy's, Headscale's
and Litestream's own metrics (from their loopback listeners), `tailscale
status --json`, a `tailscale ping` of each upstream machine (which also wakes
its path, as doctor's does), each upstream's client version (`tailscale
whois`), the config agent's and bootstrap's status files, the certificates
in Caddy's storage and the backup's lag. The judgement is doctor's and the
health agent's (verdicts.py, config_status.py, health.py), so the live view
uses their words. frame.py turns samples into what `status` shows, gauges.py
into the exporter's own metrics.
"""

from __future__ import annotations

import json
import re
import time
import urllib.request
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from homelab_tunnel.edge import backup_lag, certs, envfile, exposition, s3
from homelab_tunnel.edge.collect import (
    Runner,
    last_line,
    ping_command,
    run_local,
    whois_command,
)
from homelab_tunnel.edge.config_status import STATUS_PATH, read_status, status_findings
from homelab_tunnel.edge.exposition import ExpositionError, Family
from homelab_tunnel.edge.health import (
    BOOTSTRAP_STATUS,
    RESTORED,
    bootstrap_findings,
    litestream_findings,
    restore_findings,
)
from homelab_tunnel.edge.status import SourceError, parse_status, parse_whois, peers, strings
from homelab_tunnel.edge.verdicts import Report, diagnose, matches
from homelab_tunnel.edge.versions import HEADSCALE_VERSION, parse_version
from homelab_tunnel.findings import Finding, problem, warning

CONF = Path("/etc/homelab-tunnel")
METRICS_ENV = CONF / "metrics.env"
HEALTH_ENV = CONF / "health.env"
EDGE_ENV = CONF / "edge.env"
APPLIED = STATUS_PATH.parent / "applied.json"
# A ping that does not come back within this is "no answer" for the frame.
PING_TIMEOUT = "2s"
# Client versions change with an upgrade, not from one frame to the next.
VERSIONS_FOR = 60.0
HEADSCALE_VERSION_FOR = 300.0
# A backup further behind than this is said; Litestream uploads every second.
BACKUP_LAG_WARNING = 60.0
# Caddy renews a 90-day certificate with 30 days left; well below that, renewal fails.
CERTIFICATE_WARNING_DAYS = 14
CERTIFICATE_PROBLEM_DAYS = 3

Fetch = Callable[[str], str]
_PONG = re.compile(r"pong from \S+ \([^)]*\) via (\S+) in (\S+)")
_DURATION = re.compile(r"([0-9.]+)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-6, "us": 1e-3, "µs": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4, "h": 3.6e6}


@dataclass(frozen=True)
class Settings:
    """What the config object and first boot told the edge: metrics.env, health.env, edge.env."""

    edge: str
    port: int
    scrapers: tuple[str, ...]
    sources: Mapping[str, str]  # program -> its metrics URL
    upstreams: tuple[str, ...]
    headscale_version: str
    backup_enabled: bool

    @classmethod
    def read(cls, root: Path = Path("/")) -> Settings:
        """`EnvFileError` when a file is missing or unreadable, `KeyError`/`ValueError` when
        one is incomplete."""
        metrics = envfile.read(root / str(METRICS_ENV).lstrip("/"))
        health = envfile.read(root / str(HEALTH_ENV).lstrip("/"))
        edge = envfile.read(root / str(EDGE_ENV).lstrip("/"))
        sources = {
            name: metrics[f"{name.upper()}_METRICS_URL"]
            for name in ("caddy", "headscale", "litestream")
            if metrics.get(f"{name.upper()}_METRICS_URL")
        }
        return cls(
            edge=edge["EDGE_NAME"],
            port=int(metrics["METRICS_PORT"]),
            scrapers=tuple(metrics.get("METRICS_SCRAPERS", "").split()),
            sources=sources,
            upstreams=tuple(health.get("HEALTH_UPSTREAMS", "").split()),
            headscale_version=health.get("HEADSCALE_VERSION") or HEADSCALE_VERSION,
            backup_enabled=health.get("BACKUP_ENABLED") == "true",
        )


@dataclass(frozen=True)
class Ping:
    """One `tailscale ping` of an upstream: the round trip (ms, as the CLI rounds it) and path."""

    rtt_ms: float | None
    via: str = ""
    error: str = ""


def parse_ping(output: str) -> Ping:
    """The first pong line; a Go duration rounded to the millisecond ("0s", "3ms", "1.2s")."""
    for line in output.splitlines():
        found = _PONG.search(line)
        if found is None:
            continue
        parts = _DURATION.findall(found.group(2))
        if not parts:
            continue
        rtt = sum(float(number) * _UNITS[unit] for number, unit in parts)
        return Ping(rtt, found.group(1))
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return Ping(None, error=lines[-1] if lines else "no answer")


def fetch_url(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as answer:  # noqa: S310 - loopback listeners
        return str(answer.read().decode("utf-8", errors="replace"))


@dataclass
class Sample:
    """What every source said at one moment; nothing judged beyond `findings`."""

    at: datetime
    clock: float
    settings: Settings
    sources: dict[str, dict[str, Family] | None] = field(default_factory=dict)
    source_errors: dict[str, str] = field(default_factory=dict)
    status: dict[str, Any] | None = None
    pings: dict[str, Ping] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    headscale: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    sites: list[dict[str, Any]] = field(default_factory=list)
    bootstrap: str = ""
    certificates: list[certs.Certificate] = field(default_factory=list)
    backup: backup_lag.Lag | None = None
    backup_error: str = ""
    report: Report | None = None
    findings: list[Finding] = field(default_factory=list)
    seconds: float = 0.0  # how long the look took

    def family(self, source: str, name: str) -> Family | None:
        return (self.sources.get(source) or {}).get(name)


class Observer:
    """Takes samples; keeps what need not be asked again each time (versions, the bucket)."""

    def __init__(
        self,
        settings: Settings,
        *,
        root: Path = Path("/"),
        run: Runner = run_local,
        fetch: Fetch = fetch_url,
        backup: backup_lag.BackupWatch | None = None,
        storage: Path = certs.STORAGE,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self.root = root
        self.run = run
        self.fetch = fetch
        self.backup = backup
        self.storage = storage
        self.wall = wall
        self._versions: tuple[float, dict[str, str]] = (-VERSIONS_FOR, {})
        self._headscale: tuple[float, str] = (-HEADSCALE_VERSION_FOR, "")

    def path(self, inside: Path | str) -> Path:
        return self.root / str(inside).lstrip("/")

    def sample(self) -> Sample:
        started = time.monotonic()
        sample = Sample(at=self.wall(), clock=started, settings=self.settings)
        with ThreadPoolExecutor(max(2, len(self.settings.upstreams) + 1)) as pool:
            pings = {up: pool.submit(self._ping, up) for up in self.settings.upstreams}
            sources = {name: pool.submit(self._source, url) for name, url in self._urls()}
            for name, future in sources.items():
                sample.sources[name], error = future.result()
                if error:
                    sample.source_errors[name] = error
            sample.pings = {up: future.result() for up, future in pings.items()}
        self._tailnet(sample)
        self._files(sample)
        sample.findings = self._judge(sample)
        sample.seconds = time.monotonic() - started
        return sample

    # -- the sources ----------------------------------------------------------

    def _urls(self) -> list[tuple[str, str]]:
        return [(name, url) for name, url in self.settings.sources.items()]

    def _source(self, url: str) -> tuple[dict[str, Family] | None, str]:
        try:
            return exposition.parse(self.fetch(url)), ""
        except (OSError, ExpositionError, ValueError) as exc:
            return None, str(getattr(exc, "reason", None) or exc)

    def _ping(self, upstream: str) -> Ping:
        done = self.run([ping_command(upstream, PING_TIMEOUT)], 10.0)
        return parse_ping(done.stdout + "\n" + done.stderr)

    def _tailnet(self, sample: Sample) -> None:
        done = self.run([("tailscale", "status", "--json")], 15.0)
        try:
            if done.returncode != 0:
                raise SourceError(f"`tailscale status --json` failed: {last_line(done)}")
            sample.status = parse_status(done.stdout)
        except SourceError as exc:
            sample.source_errors["tailscale"] = str(exc)
            return
        sample.versions = self._peer_versions(sample.status, sample.clock)
        sample.headscale = self._headscale_version(sample.clock)

    def _peer_versions(self, status: Mapping[str, Any], now: float) -> dict[str, str]:
        """Each upstream's client version, by its first address; asked again after a minute."""
        asked, known = self._versions
        addresses = [
            strings(peer, "TailscaleIPs", key)[0]
            for key, peer in peers(status)
            if strings(peer, "TailscaleIPs", key)
            and any(matches(peer, up, key) for up in self.settings.upstreams)
        ]
        if now - asked < VERSIONS_FOR and all(address in known for address in addresses):
            return known
        if addresses:
            done = self.run([whois_command(address) for address in addresses], 20.0)
            try:
                known = parse_whois(done.stdout)
            except SourceError:
                known = {}
        self._versions = (now, known)
        return known

    def _headscale_version(self, now: float) -> str:
        """`headscale version` of the installed binary ("v0.29.2" on its first line)."""
        asked, known = self._headscale
        if now - asked < HEADSCALE_VERSION_FOR and known:
            return known
        done = self.run([("headscale", "version")], 10.0)
        words = (done.stdout.splitlines() or [""])[0].split()
        try:
            known = str(parse_version(words[-1])) if done.returncode == 0 and words else ""
        except ValueError:
            known = ""
        self._headscale = (now, known)
        return known

    def _files(self, sample: Sample) -> None:
        try:
            sample.config = read_status(self.path(STATUS_PATH).read_text(encoding="utf-8"))
        except OSError:
            sample.config = {}
        sample.sites = self._applied_sites()
        try:
            text = self.path(BOOTSTRAP_STATUS).read_text(encoding="utf-8", errors="replace")
            sample.bootstrap = text.strip()
        except OSError:
            sample.bootstrap = ""
        sample.certificates = certs.certificates(self.path(self.storage))
        if self.backup is not None:
            try:
                sample.backup = self.backup.look(sample.at.timestamp())
            except (s3.S3Error, OSError) as exc:
                sample.backup_error = str(exc)

    def _applied_sites(self) -> list[dict[str, Any]]:
        """The sites of the config the edge serves (its last applied version)."""
        try:
            signed = json.loads(self.path(APPLIED).read_text(encoding="utf-8"))
            document = json.loads(signed["body"])
            return [
                {"domain": str(site["domain"]), "upstream": str(site.get("upstream_host", ""))}
                for site in document["sites"]
            ]
        except (OSError, ValueError, KeyError, TypeError):
            return []

    # -- the judgement ----------------------------------------------------------

    def _judge(self, sample: Sample) -> list[Finding]:
        now = sample.at
        found = bootstrap_findings(self.path(BOOTSTRAP_STATUS))
        if self.settings.backup_enabled and not found:
            found += litestream_findings(self.run)
        found += restore_findings(self.path(RESTORED), now)
        found += status_findings(self.path(STATUS_PATH), now)
        if sample.status is not None:
            sample.report = diagnose(
                sample.status,
                upstreams=self.settings.upstreams,
                headscale_version=sample.headscale or self.settings.headscale_version,
                now=now,
                peer_versions=sample.versions,
            )
            found += sample.report.findings
        else:
            error = sample.source_errors.get("tailscale", "no answer")
            found.append(problem("", f"cannot read the tailnet state: {error}"))
        for name, error in sample.source_errors.items():
            if name != "tailscale":
                found.append(warning(name, f"metrics not readable: {error}"))
        found += _certificate_findings(sample)
        if sample.backup_error:
            found.append(warning("backup", f"backup bucket not readable: {sample.backup_error}"))
        elif sample.backup is not None and sample.backup.seconds > BACKUP_LAG_WARNING:
            found.append(
                warning(
                    "backup",
                    f"Headscale's changes of the last {sample.backup.seconds:.0f} s are not in "
                    "the bucket yet (journalctl -u homelab-tunnel-litestream)",
                )
            )
        return found


def _certificate_findings(sample: Sample) -> list[Finding]:
    found: list[Finding] = []
    for cert in sample.certificates:
        days = (cert.not_after - sample.at).total_seconds() / 86400
        if days < CERTIFICATE_PROBLEM_DAYS:
            said = "has expired" if days <= 0 else f"expires in {days:.1f} days"
            found.append(
                problem(
                    f"certificate {cert.name}", f"{said}; renewal is failing (journalctl -u caddy)"
                )
            )
        elif days < CERTIFICATE_WARNING_DAYS:
            found.append(
                warning(
                    f"certificate {cert.name}",
                    f"expires in {days:.0f} days; Caddy renews with 30 left, so renewal is "
                    "failing (journalctl -u caddy)",
                )
            )
    return found


def observer_from_files(root: Path = Path("/")) -> Observer:
    """The observer as the edge runs it: its settings, and the bucket when backups are on."""
    settings = Settings.read(root)
    backup = None
    if settings.backup_enabled:
        env = envfile.read(root / "etc/homelab-tunnel/backup.env")
        backup = backup_lag.watch_from_env(env, root / str(backup_lag.DATABASE).lstrip("/"))
    return Observer(settings, root=root, backup=backup, storage=certs.STORAGE)
