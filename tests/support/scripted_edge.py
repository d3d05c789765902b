"""A scripted edge for the observer, the exporter and `status`: its programs, files and pages.

The runner answers as tailscale, headscale and systemctl do (the tailnet from
the recorded status and whois documents of tests/data/tailscale), Caddy's
page is in the shape Caddy 2.11 writes (tests/render/test_caddy_metrics.py
checks that shape against the real Caddy), and the edge's files are written
into a scratch root as the config agent and bootstrap leave them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from homelab_tunnel.edge.collect import Result
from support.config import DATA

NOW = datetime(2026, 8, 23, 9, 13, tzinfo=UTC)
HOMELAB = "homelab.tail.example.net"
NAME = "caddy_http_request_duration_seconds"


def caddy_page(fast: int, slow: int, missing: int, *, host: str = "blog.example.com") -> str:
    """Caddy's per-host histograms: `fast` 200s under 5 ms, `slow` ones under 0.5 s, 404s."""
    lines = [f"# TYPE {NAME} histogram"]
    for code, under_5ms, total in (("200", fast, fast + slow), ("404", missing, missing)):
        if not total:
            continue
        labels = f'code="{code}",handler="subroute",host="{host}",method="GET",server="srv0"'
        for bound, count in (("0.005", under_5ms), ("0.5", total), ("+Inf", total)):
            lines.append(f'{NAME}_bucket{{{labels},le="{bound}"}} {count}')
        lines += [f"{NAME}_count{{{labels}}} {total}", f"{NAME}_sum{{{labels}}} 1"]
    for name, per in (
        ("caddy_http_request_size_bytes", 70),
        ("caddy_http_response_size_bytes", 1000),
    ):
        lines.append(f"# TYPE {name} histogram")
        count = fast + slow + missing
        labels = f'code="200",handler="subroute",host="{host}",method="GET",server="srv0"'
        lines += [
            f'{name}_bucket{{{labels},le="+Inf"}} {count}',
            f"{name}_sum{{{labels}}} {per * count}",
            f"{name}_count{{{labels}}} {count}",
        ]
    return "\n".join(lines) + "\n"


class Edge:
    """The programs the observer asks, scripted; every call recorded."""

    def __init__(self) -> None:
        self.status = (DATA / "tailscale" / "status-direct.json").read_text()
        self.status_code = 0
        self.whois = (DATA / "tailscale" / "whois-homelab.json").read_text()
        self.ping = "pong from homelab (100.64.0.2) via 198.51.100.22:41641 in 9ms\n"
        self.pages = {"caddy": [caddy_page(0, 0, 0)], "headscale": ["# TYPE hs gauge\nhs 1\n"]}
        self.down: set[str] = set()
        self.calls: list[tuple[str, ...]] = []

    def run(self, commands: Sequence[Sequence[str]], _timeout: float) -> Result:
        out, err, code = [], [], 0
        for argv in commands:
            self.calls.append(tuple(argv))
            if argv[:2] == ("tailscale", "ping"):
                said, _, error = self.ping.partition("ERROR:")
                out.append(said)
                err.append(error)
                code = 1 if error else 0
            elif argv[:2] == ("tailscale", "status"):
                out.append(self.status)
                code = self.status_code
                err.append("failed to connect to tailscaled\n" if code else "")
            elif argv[:2] == ("tailscale", "whois"):
                out.append(self.whois)
            elif tuple(argv) == ("headscale", "version"):
                out.append("headscale version v0.29.2\ncommit: unknown\n")
            elif argv[:2] == ("systemctl", "is-active"):
                out.append("active\n")
            else:
                raise AssertionError(f"unexpected command {argv}")
        return Result(code, "".join(out), "".join(err))

    def fetch(self, url: str) -> str:
        source = url.split("//")[1].split(".")[0]
        if source in self.down:
            raise OSError("Connection refused")
        pages = self.pages[source]
        return pages.pop(0) if len(pages) > 1 else pages[0]


def write_edge_files(root: Path) -> None:
    """The files the observer reads, under `root`: settings, status, applied config."""
    conf = root / "etc/homelab-tunnel"
    conf.mkdir(parents=True)
    (conf / "edge.env").write_text("EDGE_NAME=homelab-edge\n")
    (conf / "health.env").write_text(
        f"HEALTH_UPSTREAMS={HOMELAB}\nHEADSCALE_VERSION=0.29.2\nBACKUP_ENABLED=false\n"
    )
    (conf / "metrics.env").write_text(
        "METRICS_PORT=9180\nMETRICS_SCRAPERS=homelab\n"
        "CADDY_METRICS_URL=http://caddy.local/metrics\n"
        "HEADSCALE_METRICS_URL=http://headscale.local/metrics\nLITESTREAM_METRICS_URL=\n"
    )
    state = root / "var/lib/homelab-tunnel"
    (state / "config").mkdir(parents=True)
    (state / "bootstrap-status").write_text("ready: edge ready: homelab-edge on 203.0.113.10\n")
    applied = {"at": "2026-08-23T09:00:00Z", "version": "0123456789ab"}
    (state / "config/status.json").write_text(json.dumps({"applied": applied}))
    document = {"sites": [{"domain": "blog.example.com", "upstream_host": HOMELAB}]}
    (state / "config/applied.json").write_text(json.dumps({"body": json.dumps(document)}))
