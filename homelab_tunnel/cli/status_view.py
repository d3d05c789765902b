"""One frame of `homelab-tunnel status` on the terminal: sites, upstream machines, the edge.

Everything shown comes from the edge's frame (edge/frame.py) and is
escaped, since names come from peers and servers. Verdicts use doctor's
words and colours; a path that changed in the last minute is shown in
reverse video, and every change is listed with the time it was seen.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from homelab_tunnel.cli.output import finding_markup, literal
from homelab_tunnel.findings import Finding, Severity

HIGHLIGHT_FOR = timedelta(minutes=1)
CHANGES_SHOWN = 5


@dataclass(frozen=True)
class PathChange:
    at: datetime
    upstream: str
    before: str
    after: str

    def line(self) -> str:
        """The time as the operator's clock says it: the frame's moment, in local time."""
        when = self.at.astimezone().strftime("%H:%M:%S")
        return f"{when} {self.upstream}: {self.before} -> {self.after}"


@dataclass
class PathWatch:
    """The path each upstream had in the last frame; a change is kept with its time."""

    last: dict[str, str] = field(default_factory=dict)
    changes: list[PathChange] = field(default_factory=list)

    def see(self, frame: Mapping[str, Any]) -> list[PathChange]:
        at = _time(frame.get("at")) or datetime.now(UTC)
        new = []
        for upstream in frame.get("upstreams", []):
            name, path = str(upstream["name"]), _path_text(upstream)
            if name in self.last and self.last[name] != path:
                new.append(PathChange(at, name, self.last[name], path))
            self.last[name] = path
        self.changes += new
        return new

    def recent(self, name: str, now: datetime) -> bool:
        return any(c.upstream == name and now - c.at <= HIGHLIGHT_FOR for c in self.changes)


def _time(text: Any) -> datetime | None:
    try:
        return datetime.strptime(str(text), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None


def _path_text(upstream: Mapping[str, Any]) -> str:
    path = upstream.get("path")
    if isinstance(path, dict):
        return str(path.get("text", "?"))
    return "not in the tailnet"


def rate(value: Any, unit: str = "") -> str:
    if value is None:
        return "-"
    number = float(value)
    return f"{number:.1f}{unit}" if number else f"0{unit}"


def size(value: Any) -> str:
    if value is None:
        return "-"
    number = float(value)
    for unit in ("B", "kB", "MB", "GB"):
        if abs(number) < 1000 or unit == "GB":
            return f"{number:.0f} {unit}" if unit == "B" else f"{number:.1f} {unit}"
        number /= 1000
    return f"{number:.1f} GB"  # pragma: no cover - the loop returns


def millis(value: Any, *, whole_ms: bool = False) -> str:
    """Latency; a ping's round trip is rounded to whole ms by Tailscale, so 0 means under 1."""
    if value is None:
        return "-"
    number = float(value)
    if whole_ms and number == 0:
        return "<1 ms"
    return f"{number:.1f} ms" if number < 10 else f"{number:.0f} ms"


def ago(when: Any, now: datetime) -> str:
    at = _time(when)
    if at is None:
        return "never"
    seconds = max(0, int((now - at).total_seconds()))
    if seconds < 120:
        return f"{seconds} s ago"
    if seconds < 7200:
        return f"{seconds // 60} min ago"
    return f"{seconds // 3600} h ago"


def _table(title: str, columns: Sequence[str]) -> Table:
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for column in columns:
        table.add_column(column)
    return table


def sites_table(frame: Mapping[str, Any]) -> Table:
    table = _table(
        "sites (per second over the last interval; totals since Caddy loaded its config)",
        (
            "site",
            "req/s",
            "p50",
            "p95",
            "4xx/s",
            "5xx/s",
            "in/s",
            "out/s",
            "requests",
            "4xx",
            "5xx",
        ),
    )
    for site in frame.get("sites", []):
        rates = site.get("rates") or {}
        totals = site.get("totals") or {}
        table.add_row(
            literal(str(site["domain"])),
            rate(rates.get("requests")),
            millis(rates.get("p50_ms")),
            millis(rates.get("p95_ms")),
            _bad(rate(rates.get("4xx")), "yellow"),
            _bad(rate(rates.get("5xx")), "red"),
            size(rates.get("bytes_in")),
            size(rates.get("bytes_out")),
            str(totals.get("requests", 0)),
            str(totals.get("4xx", 0)),
            str(totals.get("5xx", 0)),
        )
    return table


def _bad(text: str, colour: str) -> str:
    return text if text in ("0", "-") else f"[{colour}]{text}[/{colour}]"


def upstreams_table(frame: Mapping[str, Any], paths: PathWatch, now: datetime) -> Table:
    edge = frame.get("edge") or {}
    minimum = edge.get("min_tailscale") or "?"
    table = _table(
        f"upstream machines (Headscale {literal(str(edge.get('headscale', '?')))} accepts "
        f"Tailscale {literal(str(minimum))}+)",
        ("machine", "path", "round trip", "client", "last handshake"),
    )
    for upstream in frame.get("upstreams", []):
        name = str(upstream["name"])
        path = upstream.get("path")
        direct = isinstance(path, dict) and path.get("kind") == "direct"
        style = "green" if direct else "red"
        if paths.recent(name, now):
            style += " reverse bold"
        client = literal(str(upstream.get("version") or "unknown"))
        if upstream.get("supported") is False:
            client = f"[red]{client} (refused)[/red]"
        elif upstream.get("supported") is True:
            client += " (accepted)"
        table.add_row(
            literal(name),
            f"[{style}]{literal(_path_text(upstream))}[/{style}]",
            millis(upstream.get("rtt_ms"), whole_ms=True),
            client,
            ago(upstream.get("last_handshake"), now),
        )
    return table


def edge_lines(frame: Mapping[str, Any], now: datetime) -> list[str]:
    edge = frame.get("edge") or {}
    config = edge.get("config") or {}
    bootstrap = str(edge.get("bootstrap") or "no bootstrap status yet")
    state = "ready" if bootstrap.startswith("ready:") else bootstrap
    lines = [
        f"[bold]{literal(str(edge.get('name', '?')))}[/bold]: {literal(state)}, "
        f"Headscale {literal(str(edge.get('headscale') or '?'))}, "
        f"Tailscale {literal(str(edge.get('tailscale') or '?'))}, "
        f"config {literal(str(config.get('version') or 'none'))} "
        f"applied {ago(config.get('applied_at'), now)}, "
        f"{_backup(edge.get('backup'))}"
    ]
    names = [
        f"{literal(str(cert['name']))} {_days(cert.get('days_left'))}"
        for cert in edge.get("certificates", [])
    ]
    lines.append("certificates: " + (", ".join(names) if names else "none yet"))
    return lines


def _days(days: Any) -> str:
    if days is None:
        return "?"
    number = float(days)
    text = f"{number:.0f} days left"
    return f"[red]{text}[/red]" if number < 14 else text


def _backup(backup: Any) -> str:
    if not isinstance(backup, dict):
        return "backups off"
    if backup.get("error"):
        return f"[yellow]backup lag unknown ({literal(str(backup['error']))})[/yellow]"
    lag = backup.get("lag_seconds")
    return "backup lag ?" if lag is None else f"backup lag {float(lag):.1f} s"


def findings_of(frame: Mapping[str, Any]) -> list[Finding]:
    return [
        Finding(Severity(item["severity"]), str(item["subject"]), str(item["message"]))
        for item in frame.get("findings", [])
    ]


def render(frame: Mapping[str, Any], paths: PathWatch, *, footer: str = "") -> RenderableType:
    now = _time(frame.get("at")) or datetime.now(UTC)
    parts: list[RenderableType] = [
        Text.from_markup("\n".join(edge_lines(frame, now))),
        sites_table(frame),
        upstreams_table(frame, paths, now),
    ]
    if paths.changes:
        shown = paths.changes[-CHANGES_SHOWN:]
        parts.append(
            Text.from_markup(
                "path changes:\n"
                + "\n".join(f"  [reverse bold]{literal(c.line())}[/reverse bold]" for c in shown)
            )
        )
    shown_findings = [f for f in findings_of(frame) if f.severity is not Severity.OK]
    verdict = "[green]ok[/green]" if frame.get("ok") else "[red]problems found[/red]"
    lines = [finding_markup(finding) for finding in shown_findings]
    lines.append(f"{verdict}: {literal(str(frame.get('summary', '')))}")
    parts.append(Text.from_markup("\n".join(lines)))
    if footer:
        parts.append(Text(footer, style="dim"))
    return Group(*parts)
