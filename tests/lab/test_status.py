"""Scenario: the edge working, seen by `status` and by the homelab's Prometheus.

A known load goes through the edge (30 requests to the blog: 5 pages, 5
404s, 15 answered after 260 ms, 5 after 520 ms) and `status --json` must count it exactly and
put its p50 and p95 in the histogram bucket that holds the true value (the
latencies are estimates from Caddy's buckets, 5, 10, 25, 50, 100, 250, 500 ms,
1, 2.5 s, ...: that bucket is the tolerance). The metrics endpoint answers
the homelab on the edge's tailnet address and nobody else: not the public
addresses (the cloud firewall drops them; without it, nothing listens there),
not a tailnet machine the ACL does not name, not the edge itself. Then the
live view runs in tmux while UDP is blocked: the path turns to the edge's DERP
within seconds, highlighted, over one real ssh session from the operator's
machine (the homelab), which sshd counts.
"""

from __future__ import annotations

import json
import math
import re
import shlex
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from rich.text import Text
from support.lab.addresses import HOME_ROUTER_WAN, LAPTOP, RESERVED_IP
from support.lab.lab import Lab
from support.lab.shell import BASE_ENV, LabError, wait_for

from homelab_tunnel.edge.exposition import parse

BLOG = "blog.lab.example"
BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)  # Caddy's (Prometheus') buckets
# p50 falls among the 260 ms answers, p95 among the 520 ms ones: just above a bucket's
# lower bound, so that a busy machine's delays have most of the bucket to spare.
LOAD = [("/", 5), ("/status/404", 5), ("/slow?ms=260", 15), ("/slow?ms=520", 5)]
PORT = 9180


def _bucket(seconds: float) -> float:
    return next((bound for bound in BOUNDS if seconds <= bound), math.inf)


def _quantile(values: list[float], q: float) -> float:
    ranked = sorted(values)
    return ranked[math.ceil(q * len(ranked)) - 1]


@dataclass
class Load:
    codes: list[int]
    sizes: list[int]
    seconds: list[float]
    document: dict[str, Any]
    sessions: list[str]  # sshd's "Accepted ..." lines while status ran


@pytest.fixture(scope="module")
def load(lab: Lab) -> Load:
    """The known load, then one `status --json`."""
    lab.edge.reload_caddy()  # Caddy's counters start again: only this load is in them
    script = "; ".join(
        f"for i in $(seq {count}); do curl -sS --cacert {lab.roots} -o /dev/null "
        f"-w '%{{http_code}} %{{size_download}} %{{time_pretransfer}} %{{time_total}}\\n' "
        f"https://{BLOG}{path}; done"
        for path, count in LOAD
    )
    done = lab.visitor.run(["sh", "-c", script], timeout=120)
    rows = [line.split() for line in done.stdout.splitlines()]
    mark = lab.edge.mark()
    status = lab.cli(
        "status", "--config", str(lab.config_path), "--ssh", f"root@{RESERVED_IP}", "--json",
        check=False,
    )  # fmt: skip
    assert status.returncode in (0, 1), status.stdout + status.stderr
    return Load(
        codes=[int(row[0]) for row in rows],
        sizes=[int(row[1]) for row in rows],
        # From the request leaving to the last byte: what Caddy times, plus the wire.
        seconds=[float(row[3]) - float(row[2]) for row in rows],
        document=json.loads(status.stdout),
        sessions=_sessions(lab, mark),
    )


def _sessions(lab: Lab, mark: str) -> list[str]:
    """The ssh logins the droplet's sshd accepted since `mark`."""
    return [line for line in lab.edge.since(mark, "ssh").splitlines() if "Accepted " in line]


def _blog(load: Load) -> dict[str, Any]:
    return next(site for site in load.document["sites"] if site["domain"] == BLOG)


def test_the_load_went_through_as_planned(load: Load) -> None:
    assert load.codes == [200] * 5 + [404] * 5 + [200] * 20
    assert all(0.25 < seconds < 0.5 for seconds in load.seconds[10:25]), load.seconds[10:25]
    assert all(0.5 < seconds < 1 for seconds in load.seconds[25:]), load.seconds[25:]


def test_status_counts_the_load_exactly(load: Load) -> None:
    totals = _blog(load)["totals"]
    assert (totals["requests"], totals["4xx"], totals["5xx"]) == (30, 5, 0)
    assert totals["bytes_out"] == sum(load.sizes)  # the bodies, byte for byte
    assert totals["bytes_in"] > 0  # Caddy's estimate of the requests' size
    photos = next(site for site in load.document["sites"] if site["domain"] != BLOG)
    assert photos["totals"]["requests"] == 0


@pytest.mark.parametrize("q", [0.5, 0.95])
def test_status_latency_lies_in_the_bucket_of_the_true_value(load: Load, q: float) -> None:
    """The visitor's time from its request leaving to the last byte (curl's time_total minus
    time_pretransfer) is Caddy's measure plus a few hops of the wire: the same bucket."""
    said = _blog(load)["totals"][f"p{round(q * 100)}_ms"] / 1000
    true = _quantile(load.seconds, q)
    assert _bucket(said) == _bucket(true), (said, true)


def test_status_came_over_one_ssh_session(load: Load) -> None:
    (session,) = load.sessions
    assert f"Accepted publickey for root from {HOME_ROUTER_WAN.address} " in session
    edge = load.document["edge"]
    assert edge["sources"] == {"caddy": True, "headscale": True, "tailscale": True}
    (homelab,) = load.document["upstreams"]
    assert homelab["path"]["kind"] == "direct"
    assert (homelab["version"], homelab["supported"]) == ("1.102.3", True)
    assert {cert["name"] for cert in edge["certificates"]} == {
        "blog.lab.example",
        "photos.lab.example",
        "headscale.lab.example",
    }


# ---------------------------------------------------------------------------
# The metrics endpoint: the tailnet address, for the homelab only
# ---------------------------------------------------------------------------


@dataclass
class Scrapes:
    address: str
    listening: str
    homelab: subprocess.CompletedProcess[str]
    public: list[subprocess.CompletedProcess[str]]
    public_without_firewall: subprocess.CompletedProcess[str]
    laptop: subprocess.CompletedProcess[str]
    laptop_state: str
    laptop_node: dict[str, Any]
    laptop_address: str
    exporter_log: str
    edge_itself: subprocess.CompletedProcess[str]


def _get(box: Any, url: str, seconds: int = 10) -> subprocess.CompletedProcess[str]:
    return box.run(
        ["curl", "-sS", "--max-time", str(seconds), "-w", "\n%{http_code}", url],
        check=False, timeout=seconds + 10,
    )  # fmt: skip


@pytest.fixture(scope="module")
def scrapes(lab: Lab, load: Load) -> Iterator[Scrapes]:
    address = lab.edge.node.cli("ip", "-4").stdout.split()[0]
    url = f"http://{address}:{PORT}/metrics"
    laptop = lab.join_machine("laptop", LAPTOP)
    try:
        found = Scrapes(
            address=address,
            listening=lab.edge.box.run(["ss", "-Hltn", f"sport = :{PORT}"]).stdout,
            homelab=_get(lab.home.box, url),
            public=[
                _get(lab.visitor, f"http://{where}:{PORT}/metrics", 5)
                for where in (RESERVED_IP, lab.edge.droplet.own)
            ],
            public_without_firewall=_unfirewalled(lab, f"http://{lab.edge.droplet.own}:{PORT}"),
            laptop=_get(laptop.box, url, 5),
            laptop_state=str(laptop.status().get("BackendState")),
            laptop_node=next(n for n in lab.edge.nodes() if n.get("name") == "laptop"),
            laptop_address=laptop.cli("ip", "-4").stdout.strip(),
            edge_itself=_get(lab.edge.box, url),
            exporter_log=lab.edge.box.log("homelab-tunnel-metrics"),
        )
        yield found
    finally:
        node = next((n for n in lab.edge.nodes() if n.get("name") == "laptop"), None)
        if node is not None:
            lab.edge.headscale("nodes", "delete", "--identifier", str(node["id"]), "--force")
        laptop.box.destroy()
        lab.internet.detach("laptop0")


def _unfirewalled(lab: Lab, url: str) -> subprocess.CompletedProcess[str]:
    lab.cloud.remove_firewall()
    try:
        return _get(lab.visitor, f"{url}/metrics", 5)
    finally:
        lab.apply_firewall()


def test_the_endpoint_listens_on_the_tailnet_address_only(scrapes: Scrapes) -> None:
    (line,) = scrapes.listening.splitlines()
    assert line.split()[3] == f"{scrapes.address}:{PORT}"
    assert scrapes.address.startswith("100.")


def test_the_homelab_gets_every_source_and_the_same_counts(scrapes: Scrapes) -> None:
    body, code = scrapes.homelab.stdout.rsplit("\n", 1)
    assert code == "200"
    families = parse(body)
    counts = {
        (s.label("code"), s.label("source")): s.value
        for s in families["caddy_http_request_duration_seconds"].samples
        if s.name.endswith("_count") and s.label("host") == BLOG
    }
    assert counts == {("200", "caddy"): 25.0, ("404", "caddy"): 5.0}  # the load, again
    assert families["headscale_nodestore_nodes"].samples[0].label("source") == "headscale"
    path = families["homelab_tunnel_upstream_path"].samples
    assert {s.label("path") for s in path if s.value} == {"direct"}


def test_the_public_addresses_get_no_answer(scrapes: Scrapes) -> None:
    """The cloud firewall opens no such port: the request times out, as on DigitalOcean."""
    for done in scrapes.public:
        assert done.returncode == 28, done.stderr  # curl: operation timed out
        assert done.stdout.endswith("000")


def test_negative_twin_without_the_cloud_firewall_nothing_listens_there(scrapes: Scrapes) -> None:
    done = scrapes.public_without_firewall
    assert done.returncode == 7, done.stderr  # connection refused
    assert done.stdout.endswith("000")


def test_a_tailnet_machine_the_acl_does_not_name_gets_nothing(scrapes: Scrapes) -> None:
    # It is a node of the edge's Headscale, logged in and online ...
    assert scrapes.laptop_state == "Running"
    assert scrapes.laptop_node["online"] is True
    # ... but the ACL gives it no path to the edge: its tailscaled refuses the connection
    # itself, and the endpoint never hears of it (it logs every request it refuses).
    assert scrapes.laptop.returncode == 7, scrapes.laptop.stderr  # could not connect
    assert scrapes.laptop.stdout.endswith("000")
    assert scrapes.laptop_address.startswith("100.")
    assert scrapes.laptop_address not in scrapes.exporter_log
    assert '100.64.0.1 "GET /metrics HTTP/1.1" 403' in scrapes.exporter_log  # the edge, below


def test_the_endpoint_refuses_who_is_not_a_scraper_even_past_the_acl(scrapes: Scrapes) -> None:
    """The edge itself is not filtered by its own ACL: the endpoint's own check answers."""
    body, code = scrapes.edge_itself.stdout.rsplit("\n", 1)
    assert code == "403"
    assert body == "forbidden: not a machine in this edge's metrics.scrapers\n"


# ---------------------------------------------------------------------------
# The live view, in tmux, while UDP is blocked
# ---------------------------------------------------------------------------


@dataclass
class Live:
    before: str
    after: str
    ansi: str
    seconds_to_derp: float
    exited: bool  # with exit code 0
    watches: list[str]  # the watch agents running in the droplet during the view
    sessions: list[str]  # sshd's "Accepted ..." lines from the view's start to its end


def _tmux(socket: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["tmux", "-L", socket, *args], capture_output=True, text=True, timeout=30, check=False
    )


def _screen(socket: str, *flags: str) -> str:
    return _tmux(socket, "capture-pane", "-p", "-t", "status", *flags).stdout


def _until_shown(socket: str, text: str, seconds: float) -> None:
    try:
        wait_for(f"{text!r} in the live view", lambda: text in _screen(socket), seconds)
    except LabError as exc:
        raise LabError(f"{exc}; the terminal shows:\n{_screen(socket)}") from None


@pytest.fixture(scope="module")
def live(lab: Lab, scrapes: Scrapes) -> Iterator[Live]:
    if subprocess.run(["which", "tmux"], capture_output=True, check=False).returncode:
        pytest.skip("tmux is not installed (`make test-tools` installs it)")
    visit = f"curl -sS -o /dev/null --max-time 15 --cacert {lab.roots} https://{BLOG}"
    socket = f"{lab.state.prefix}-status"
    # On the operator's machine (the homelab), whose address the edge lets in on port 22.
    status = [lab.programs.cli, "status", "--config", lab.config_path, "--ssh",
              f"root@{RESERVED_IP}"]  # fmt: skip
    command = shlex.join(
        ["env", "-u", "COLUMNS", "-u", "LINES", f"PATH={BASE_ENV['PATH']}", "LANG=C.UTF-8",
         "TERM=xterm-256color", *lab.home.box.command(status)]
    )  # fmt: skip
    mark = lab.edge.mark()
    # The command's last words stay on the screen if it fails (remain-on-exit).
    started = _tmux(socket, "new-session", "-d", "-s", "status", "-x", "150", "-y", "48",
                    f"{command}; echo exit $?; sleep 30")  # fmt: skip
    assert started.returncode == 0, started.stderr
    try:
        # Visitors keep coming while the path moves: the view shows their rates throughout.
        lab.visitor.spawn("visits", ["sh", "-c", f"while :; do {visit}/; {visit}'/slow?ms=40'; "
                                     f"{visit}/status/404; sleep 0.2; done"])  # fmt: skip
        _until_shown(socket, f"direct {HOME_ROUTER_WAN.address}", 30)
        time.sleep(4.5)  # two frames: rates over an interval full of visits
        before = _screen(socket)
        edge = [lab.edge.droplet.own, lab.edge.droplet.anchor]
        with lab.internet.udp_blocked(HOME_ROUTER_WAN.address, edge):
            blocked = time.monotonic()
            _until_shown(socket, "-> via DERP region headscale", 60)
            seconds = time.monotonic() - blocked
            time.sleep(2.5)  # one more frame: the view as it stays
            after, ansi = _screen(socket), _screen(socket, "-e")
            watches = _in_namespace(lab.edge.box.netns, "homelab_tunnel.edge.watch")
            _tmux(socket, "send-keys", "-t", "status", "q")
            _until_shown(socket, "exit ", 15)  # the shell's line after status returned
        exited = "exit 0" in _screen(socket)
        yield Live(before, after, ansi, seconds, exited, watches, _sessions(lab, mark))
    finally:
        lab.visitor.stop("visits")
        _tmux(socket, "kill-server")
        lab.edge.node.wait_direct("homelab", timeout=60)


def test_the_live_view_shows_the_path_turn_to_the_edges_derp_within_seconds(live: Live) -> None:
    assert f"direct {HOME_ROUTER_WAN.address}:" in live.before
    assert "via DERP region headscale" in live.after
    assert live.seconds_to_derp < 20  # Tailscale trusts a silent direct path for 6.5 s
    assert (
        "problem: site upstream homelab.tail.lab.example: via DERP region headscale, not direct"
        in live.after
    )


def test_the_sites_rates_show_through_the_change(live: Live) -> None:
    for screen in (live.before, live.after):
        row = next(line.split() for line in screen.splitlines() if line.split()[:1] == [BLOG])
        assert float(row[1]) > 0, row  # requests per second
    row = next(line.split() for line in live.before.splitlines() if line.split()[:1] == [BLOG])
    assert float(row[4]) > 0, row  # 4xx per second: a third of the visits are 404s


def test_the_change_is_highlighted_with_its_time(live: Live) -> None:
    line = next(line for line in live.after.splitlines() if "-> via DERP region headscale" in line)
    clock, change = line.strip().split(" ", 1)
    assert time.strptime(clock, "%H:%M:%S")
    assert change.startswith(f"homelab.tail.lab.example: direct {HOME_ROUTER_WAN.address}:")
    assert {"7", "31"} <= _styles_before(live.ansi, "via DERP region headscale")  # reverse, red
    assert "7" in _styles_before(live.ansi, clock)


def _styles_before(ansi: str, text: str) -> set[str]:
    """The SGR parameters (7: reverse video, 31: red) of the escapes right before `text`."""
    at = ansi.index(text)
    escapes = re.search(r"(?:\x1b\[[0-9;]*m)+$", ansi[:at])
    return set(re.findall(r"\d+", escapes.group())) if escapes else set()


def test_the_whole_view_was_one_ssh_session_and_q_ended_it(live: Live, lab: Lab) -> None:
    (session,) = live.sessions
    assert f"Accepted publickey for root from {HOME_ROUTER_WAN.address} " in session
    (watch,) = live.watches
    assert watch.rstrip().endswith("--interval 2 --count 0")
    assert live.exited
    assert not _in_namespace(lab.edge.box.netns, "homelab_tunnel.edge.watch")  # ended with it


def _in_namespace(netns: str, text: str) -> list[str]:
    """Command lines of the processes in network namespace `netns` that contain `text`."""
    pids = subprocess.run(["ip", "netns", "pids", netns], capture_output=True, text=True,
                          check=True).stdout.split()  # fmt: skip
    found = []
    for pid in pids:
        try:
            line = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in line:
            found.append(line)
    return found


def test_a_frame_of_the_live_view_renders_to_svg(live: Live, lab: Lab) -> None:
    """The status page's picture (docs/operations/status-live.svg): this run's screen."""
    console = Console(record=True, width=150, force_terminal=True, color_system="256")
    console.print(Text.from_ansi(live.ansi.rstrip("\n")))
    svg = lab.directory / "logs" / "status-live.svg"
    console.save_svg(str(svg), title="homelab-tunnel status")
    assert "via DERP region headscale" in Path(svg).read_text().replace("&#160;", " ")
