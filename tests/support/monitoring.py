"""The queries in monitoring/ (the Grafana dashboard, the alert rules) and the names they use.

Each query's metric selectors are read with a small PromQL reader (strings,
label lists and durations taken out, function names told from metrics by the
parenthesis after them); promtool itself checks that every query parses, so
the reader only has to find names in text promtool accepts. The names an
edge exposes are read from its real page: every series name (a histogram's
`_bucket`, `_sum` and `_count`) with its labels, plus what Prometheus adds
to every target (`up`, `job`, `instance`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from homelab_tunnel.edge.exposition import parse
from support.config import ROOT

MONITORING = ROOT / "monitoring"
DASHBOARD = MONITORING / "grafana-dashboard.json"
ALERTS = MONITORING / "alerts.yml"
# The page a real edge served in the lab (backups on, so Litestream's too), for the
# tests that run without a lab; tests/lab/test_backups.py checks it is still what one serves.
EXPOSED = ROOT / "tests" / "data" / "edge-metrics.prom"

# Grafana's variables, as a query reaches Prometheus.
_VARIABLES = [(re.compile(r"\$__rate_interval|\$__interval|\$__range"), "5m"),
              (re.compile(r"\$\{?\w+\}?"), ".*")]  # fmt: skip
_STRING = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_SELECTOR = re.compile(r"(?<![\w.:$])([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{[^}]*\})?")
_MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
             "unless", "offset", "inf", "nan", "start", "end"}  # fmt: skip
_LABEL_VALUES = re.compile(r"label_values\(\s*(\w+)\s*(\{[^}]*\})?\s*,\s*(\w+)\s*\)")


@dataclass(frozen=True)
class Selector:
    name: str
    labels: frozenset[str]


def grafana(query: str) -> str:
    for pattern, value in _VARIABLES:
        query = pattern.sub(value, query)
    return query


def selectors(query: str) -> list[Selector]:
    """The metric selectors of one PromQL query: `name{labels}`, functions left out."""
    masked = _STRING.sub(lambda m: '""', query)
    masked = _GROUPING.sub(" ", masked)
    found = []
    for match in _SELECTOR.finditer(masked):
        name, braces = match.group(1), match.group(2) or ""
        after = masked[match.end() :].lstrip()
        if name in _KEYWORDS or (not braces and after.startswith("(")):
            continue
        found.append(Selector(name, frozenset(_MATCHER.findall(braces))))
    return found


def dashboard_queries(path: Path = DASHBOARD) -> list[str]:
    """Every query of the dashboard's panels, as Prometheus gets it."""
    document = json.loads(path.read_text())
    panels = list(document["panels"])
    for panel in document["panels"]:
        panels += panel.get("panels", [])
    return [grafana(t["expr"]) for p in panels for t in p.get("targets", []) if t.get("expr")]


def dashboard_label_values(path: Path = DASHBOARD) -> list[tuple[Selector, str]]:
    """The variables' `label_values(metric{...}, label)`: the metric and the label it lists."""
    document = json.loads(path.read_text())
    found = []
    for variable in document["templating"]["list"]:
        definition = variable.get("definition", "")
        match = _LABEL_VALUES.search(grafana(definition))
        if match:
            braces = match.group(2) or ""
            selector = Selector(match.group(1), frozenset(_MATCHER.findall(braces)))
            found.append((selector, match.group(3)))
    return found


def rule_queries(path: Path = ALERTS) -> dict[str, str]:
    """alert name -> its expression."""
    document = yaml.safe_load(path.read_text())
    return {rule["alert"]: rule["expr"] for group in document["groups"] for rule in group["rules"]}


def exposed_names(text: str) -> dict[str, set[str]]:
    """Each series name a scrape of `text` makes, with its labels (Prometheus' included)."""
    target = {"job", "instance"}
    names: dict[str, set[str]] = {"up": set(target)}
    for family in parse(text).values():
        for sample in family.samples:
            names.setdefault(sample.name, set(target)).update(key for key, _ in sample.labels)
    return names


def unknown(queries: list[str], names: dict[str, set[str]]) -> list[str]:
    """Each name or label a query uses that the page does not have, said as `query: what`."""
    problems = []
    for query in queries:
        for selector in selectors(query):
            if selector.name not in names:
                problems.append(f"{query}: no metric {selector.name}")
            elif missing := selector.labels - names[selector.name]:
                problems.append(
                    f"{query}: {selector.name} has no label {', '.join(sorted(missing))}"
                )
    return problems
