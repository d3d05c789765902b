"""The Grafana dashboard and the alert rules in monitoring/: promtool reads them, they fire as
their tests say, and every name they use is one a real edge exposes.

promtool is the one from the Prometheus release pinned in tools/binaries.toml;
the names come from a page a real edge served in the lab
(tests/data/edge-metrics.prom, kept honest by tests/lab/test_backups.py).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from support.binaries import require
from support.monitoring import (
    ALERTS,
    EXPOSED,
    MONITORING,
    Selector,
    dashboard_label_values,
    dashboard_queries,
    exposed_names,
    rule_queries,
    selectors,
    unknown,
)


def _promtool(*args: str, cwd: Path = MONITORING) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(require("promtool")), *args], cwd=cwd, capture_output=True, text=True, timeout=120,
        check=False,
    )  # fmt: skip


def test_promtool_accepts_the_alert_rules() -> None:
    done = _promtool("check", "rules", "alerts.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(rule_queries())} rules found" in done.stdout


def test_negative_twin_promtool_refuses_a_broken_rule(tmp_path: Path) -> None:
    broken = ALERTS.read_text().replace("> 60", "> > 60", 1)
    (tmp_path / "alerts.yml").write_text(broken)
    done = _promtool("check", "rules", "alerts.yml", cwd=tmp_path)
    assert done.returncode != 0
    said = done.stdout + done.stderr
    assert '"HomelabTunnelBackupLagging": could not parse expression' in said


def test_every_alert_fires_as_its_tests_say() -> None:
    done = _promtool("test", "rules", "alerts.test.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_every_alert_has_a_test() -> None:
    tested = yaml.safe_load((MONITORING / "alerts.test.yml").read_text())
    names = {case["alertname"] for test in tested["tests"] for case in test["alert_rule_test"]}
    assert names == set(rule_queries())


def test_negative_twin_a_changed_threshold_fails_its_test(tmp_path: Path) -> None:
    shutil.copy(MONITORING / "alerts.test.yml", tmp_path)
    slower = ALERTS.read_text().replace(
        'expr: homelab_tunnel_upstream_path{path=~"derp|peer-relay|idle"} == 1\n        for: 5m',
        'expr: homelab_tunnel_upstream_path{path=~"derp|peer-relay|idle"} == 1\n        for: 15m',
    )
    assert slower != ALERTS.read_text()
    (tmp_path / "alerts.yml").write_text(slower)
    done = _promtool("test", "rules", "alerts.test.yml", cwd=tmp_path)
    assert done.returncode != 0
    assert "alertname: HomelabTunnelUpstreamNotDirect, time: 8m" in done.stdout + done.stderr


def test_every_dashboard_query_parses(tmp_path: Path) -> None:
    """promtool parses each query as the expression of a recording rule."""
    queries = dashboard_queries()
    assert len(queries) >= 20
    records = [{"record": f"dashboard:query{n}", "expr": query} for n, query in enumerate(queries)]
    rules = {"groups": [{"name": "dashboard", "rules": records}]}
    (tmp_path / "dashboard.yml").write_text(yaml.safe_dump(rules))
    done = _promtool("check", "rules", "dashboard.yml", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_name_in_the_dashboard_and_the_rules_is_one_the_edge_exposes() -> None:
    names = exposed_names(EXPOSED.read_text())
    assert unknown([*dashboard_queries(), *rule_queries().values()], names) == []
    for selector, label in dashboard_label_values():
        assert selector.name in names and label in names[selector.name], (selector, label)


def test_negative_twin_a_misspelt_name_or_label_is_found() -> None:
    names = exposed_names(EXPOSED.read_text())
    assert unknown(["rate(caddy_http_request_duration_second_count[5m])"], names) == [
        "rate(caddy_http_request_duration_second_count[5m]): "
        "no metric caddy_http_request_duration_second_count"
    ]
    assert unknown(['homelab_tunnel_upstream_path{pth="direct"}'], names) == [
        'homelab_tunnel_upstream_path{pth="direct"}: homelab_tunnel_upstream_path has no label pth'
    ]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (
            'sum by (host, le) (rate(caddy_http_request_duration_seconds_bucket{host=~"a|b"}[5m]))',
            [Selector("caddy_http_request_duration_seconds_bucket", frozenset({"host"}))],
        ),
        (
            "homelab_tunnel_certificate_expiry_timestamp_seconds - time() < 14 * 86400",
            [Selector("homelab_tunnel_certificate_expiry_timestamp_seconds", frozenset())],
        ),
        ('up{job="x"} == 0 and on (instance) absent(foo_total)', [
            Selector("up", frozenset({"job"})), Selector("foo_total", frozenset())]),
        ('histogram_quantile(0.95, x_bucket{code=~"5.."}) > 1e3', [
            Selector("x_bucket", frozenset({"code"}))]),
    ],
)  # fmt: skip
def test_the_reader_finds_metrics_not_functions_labels_or_numbers(
    query: str, expected: list[Selector]
) -> None:
    assert selectors(query) == expected


def test_the_fixture_is_a_real_edges_page() -> None:
    names = exposed_names(EXPOSED.read_text())
    for family in ("caddy_http_request_duration_seconds_bucket", "headscale_nodestore_nodes",
                   "litestream_sync_count", "homelab_tunnel_backup_lag_seconds"):  # fmt: skip
        assert family in names
    assert "source" in names["caddy_http_request_duration_seconds_bucket"]
