"""Prometheus' text format (0.0.4): read Caddy's, Headscale's and Litestream's, write one page.

The edge's exporter serves the three programs' metrics and its own gauges on
one endpoint, so the families are read into a structure, merged with a
`source` label naming the program (Caddy, Headscale and Litestream all expose
`go_*` and `process_*`: without the label one scrape would carry the same
series three times, which Prometheus refuses), and written again. `status`
reads Caddy's histograms from the same structure: one parser for both.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

Labels = tuple[tuple[str, str], ...]

_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL = re.compile(r"\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*\"")
_LABEL_ESCAPES = {"n": "\n", "\\": "\\", '"': '"'}
# The samples a histogram or summary family `x` writes besides `x` itself.
_SUFFIXES = {"histogram": ("_bucket", "_sum", "_count"), "summary": ("_sum", "_count")}


class ExpositionError(ValueError):
    """Text that is not the exposition format; the message names the line."""


@dataclass(frozen=True)
class Sample:
    name: str
    labels: Labels
    value: float

    def label(self, name: str) -> str:
        return dict(self.labels).get(name, "")


@dataclass
class Family:
    name: str
    type: str = "untyped"
    help: str = ""
    samples: list[Sample] = field(default_factory=list)


def parse(text: str) -> dict[str, Family]:
    """Every family in `text`, in order; samples without a TYPE line are untyped families."""
    families: dict[str, Family] = {}
    current: Family | None = None
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        if line.startswith("#"):
            words = line[1:].split(None, 2)
            if len(words) >= 2 and words[0] in ("HELP", "TYPE"):
                family = families.setdefault(words[1], Family(words[1]))
                if words[0] == "TYPE":
                    family.type = words[2].strip() if len(words) > 2 else "untyped"
                else:
                    family.help = _unescape_help(words[2] if len(words) > 2 else "")
                current = family
            continue
        try:
            sample = _sample(line)
        except ExpositionError as exc:
            raise ExpositionError(f"line {number}: {exc}") from None
        if current is None or not _belongs(sample.name, current):
            current = families.setdefault(sample.name, Family(sample.name))
        current.samples.append(sample)
    return families


def _belongs(name: str, family: Family) -> bool:
    if name == family.name:
        return True
    return any(name == family.name + suffix for suffix in _SUFFIXES.get(family.type, ()))


def _sample(line: str) -> Sample:
    match = _NAME.match(line)
    if match is None:
        raise ExpositionError(f"no metric name in {line[:80]!r}")
    name, rest = match.group(), line[match.end() :]
    labels: list[tuple[str, str]] = []
    if rest.startswith("{"):
        rest = rest[1:]
        while True:
            rest = rest.lstrip()
            if rest.startswith("}"):
                rest = rest[1:]
                break
            label = _LABEL.match(rest)
            if label is None:
                raise ExpositionError(f"bad label in {line[:80]!r}")
            value, rest = _quoted(rest[label.end() :], line)
            labels.append((label.group(1), value))
            rest = rest.lstrip()
            if rest.startswith(","):
                rest = rest[1:]
            elif not rest.startswith("}"):
                raise ExpositionError(f"expected ',' or '}}' in {line[:80]!r}")
    words = rest.split()
    if not words:
        raise ExpositionError(f"no value in {line[:80]!r}")
    try:
        number = float(words[0])
    except ValueError:
        raise ExpositionError(f"{words[0]!r} is not a number") from None
    return Sample(name, tuple(labels), number)


def _quoted(rest: str, line: str) -> tuple[str, str]:
    """A label value up to its closing quote, unescaped; and what follows it."""
    out: list[str] = []
    index = 0
    while index < len(rest):
        char = rest[index]
        if char == "\\" and index + 1 < len(rest):
            out.append(_LABEL_ESCAPES.get(rest[index + 1], "\\" + rest[index + 1]))
            index += 2
        elif char == '"':
            return "".join(out), rest[index + 1 :]
        else:
            out.append(char)
            index += 1
    raise ExpositionError(f"unterminated label value in {line[:80]!r}")


def _unescape_help(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), text)


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _escape(value: str) -> str:
    return _escape_help(value).replace('"', '\\"')


def format_value(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)


def render(families: Iterable[Family]) -> str:
    lines: list[str] = []
    for family in families:
        if family.help:
            lines.append(f"# HELP {family.name} {_escape_help(family.help)}")
        lines.append(f"# TYPE {family.name} {family.type}")
        for sample in family.samples:
            labels = ",".join(f'{key}="{_escape(value)}"' for key, value in sample.labels)
            series = f"{sample.name}{{{labels}}}" if labels else sample.name
            lines.append(f"{series} {format_value(sample.value)}")
    return "\n".join(lines) + "\n" if lines else ""


def with_label(labels: Labels, name: str, value: str) -> Labels:
    """`labels` plus name=value first; one already there is kept as `exported_<name>`."""
    kept = tuple((f"exported_{key}" if key == name else key, val) for key, val in labels)
    return ((name, value), *kept)


def merge(sources: Mapping[str, Mapping[str, Family]], label: str = "source") -> list[Family]:
    """Every source's families on one page, each sample labelled with its source.

    Families of the same name and type become one (the Go runtime's, the
    exposition handler's); a family whose type differs from the first one of
    that name cannot share its name and is left out, and said in the result's
    `homelab_tunnel_metrics_conflicts` family.
    """
    merged: dict[str, Family] = {}
    conflicts: dict[str, int] = {}
    for source, families in sources.items():
        for family in families.values():
            into = merged.setdefault(family.name, Family(family.name, family.type, family.help))
            if into.type != family.type:
                conflicts[source] = conflicts.get(source, 0) + 1
                continue
            into.samples += [
                Sample(s.name, with_label(s.labels, label, source), s.value) for s in family.samples
            ]
    result = list(merged.values())
    if conflicts:
        result.append(
            Family(
                "homelab_tunnel_metrics_conflicts",
                "gauge",
                "Families left out because another source has one of that name and another type.",
                [Sample("homelab_tunnel_metrics_conflicts", ((label, s),), n)
                 for s, n in conflicts.items()],
            )
        )  # fmt: skip
    return result


# ---------------------------------------------------------------------------
# Reading histograms: what `histogram_quantile` does, for one series
# ---------------------------------------------------------------------------

Buckets = list[tuple[float, float]]  # (upper bound, cumulative count), +Inf last


def histogram(family: Family | None, **match: str) -> Buckets:
    """The `_bucket` samples whose labels include `match`, summed per upper bound."""
    if family is None:
        return []
    sums: dict[float, float] = {}
    for sample in family.samples:
        if sample.name != family.name + "_bucket":
            continue
        labels = dict(sample.labels)
        if any(labels.get(key) != value for key, value in match.items()):
            continue
        bound = float(labels.get("le", "+Inf"))
        sums[bound] = sums.get(bound, 0.0) + sample.value
    return sorted(sums.items())


def difference(newer: Buckets, older: Buckets) -> Buckets:
    """What was observed between two readings; a reset counter (Caddy reloaded) counts anew."""
    before = dict(older)
    if any(count < before.get(bound, 0.0) for bound, count in newer):
        return list(newer)
    return [(bound, count - before.get(bound, 0.0)) for bound, count in newer]


def total(buckets: Buckets) -> float:
    return buckets[-1][1] if buckets else 0.0


def quantile(q: float, buckets: Buckets) -> float | None:
    """Prometheus' estimate: linear within the bucket holding the rank; None with no samples.

    A rank in the +Inf bucket gives the highest finite bound, as
    `histogram_quantile` does: the histogram knows nothing above it.
    """
    count = total(buckets)
    if count <= 0:
        return None
    rank = q * count
    lower, below = 0.0, 0.0
    for bound, cumulative in buckets:
        if cumulative >= rank:
            if math.isinf(bound):
                return lower
            if cumulative == below:
                return bound
            return lower + (bound - lower) * (rank - below) / (cumulative - below)
        lower, below = bound, cumulative
    return lower
