"""The port agent's nftables table on a real kernel, with real nft and conntrack.

Three network namespaces: a client on the internet, the edge (eth0, and a
veth named tailscale0 with the tailnet's 1280 MTU) and an upstream behind
it holding two tailnet addresses (a machine before and after it registers
anew). The agent is the real one; only tailscaled's status is given by the
test. Each rule has a twin showing what goes wrong without it.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from homelab_tunnel.edge.forwards import TABLE, read_forwards, ruleset, targets
from homelab_tunnel.edge.port_agent import PORTS_FILE, PortAgent

COMMANDS = ("ip", "nft", "conntrack")
EDGE, CLIENT = "203.0.113.2", "203.0.113.34"
FIRST, SECOND = "100.64.0.2", "100.64.0.3"
HOST = "gtr6.tail.example.net"
PORTS = [
    {"protocol": "udp", "port": "27015", "upstream": "gtr6", "upstream_host": HOST,
     "upstream_port": 27015},
    {"protocol": "tcp", "port": "25565", "upstream": "gtr6", "upstream_host": HOST,
     "upstream_port": 25566},
]  # fmt: skip
DOWNLOAD = 200_000


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "the forwarding table needs root for network namespaces and nftables"
    missing = [name for name in COMMANDS if shutil.which(name) is None]
    if missing:
        return f"the forwarding test needs {', '.join(missing)} (make test-tools)"
    return None


pytestmark = pytest.mark.skipif(_skip_reason() is not None, reason=_skip_reason() or "")

# Runs in a namespace: `server udp|tcp ADDRESS PORT` answers with its own address and the
# client's, as the upstream sees them (TCP: and the MSS, then DOWNLOAD bytes);
# `exchange`, `flow` and `fetch` are the client's side.
SCRIPT = r"""
import json, socket, sys, time
mode, args = sys.argv[1], sys.argv[2:]
if mode == "server":
    kind, address, port = args
    if kind == "udp":
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((address, int(port)))
        print("ready", flush=True)
        while True:
            data, peer = sock.recvfrom(2048)
            sock.sendto(f"{address} {peer[0]} ".encode() + data, peer)
    server = socket.create_server((address, int(port)))
    print("ready", flush=True)
    while True:
        conn, peer = server.accept()
        mss = conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG)
        conn.sendall(f"{address} {peer[0]} mss={mss}\n".encode() + b"x" * DOWNLOAD)
        conn.close()
elif mode == "exchange":
    address, port = args
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(1)
    sock.sendto(b"hello", (address, int(port)))
    try:
        data, peer = sock.recvfrom(2048)
        print(json.dumps({"reply": data.decode(), "from": f"{peer[0]}:{peer[1]}"}))
    except TimeoutError:
        print(json.dumps({"reply": None}))
elif mode == "flow":
    address, port, seconds = args
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(0.05)
    seen, end = [], time.monotonic() + float(seconds)
    print(json.dumps({"started": time.time()}), flush=True)
    while time.monotonic() < end:
        sock.sendto(b"tick", (address, int(port)))
        try:
            seen.append([time.time(), sock.recv(2048).decode()])
        except TimeoutError:
            pass
        time.sleep(0.05)
    print(json.dumps(seen))
elif mode == "fetch":
    address, port = args
    got = b""
    try:
        with socket.create_connection((address, int(port)), timeout=3) as sock:
            while chunk := sock.recv(65536):
                got += chunk
    except OSError:
        pass
    head, _, body = got.partition(b"\n")
    print(json.dumps({"head": head.decode(), "bytes": len(body)}))
""".replace("DOWNLOAD", str(DOWNLOAD))


@dataclass
class Lab:
    prefix: str
    root: Path
    status: dict[str, Any] = field(default_factory=dict)
    servers: list[subprocess.Popen[str]] = field(default_factory=list)
    forget: bool = True

    def ns(self, role: str) -> str:
        return f"{self.prefix}-{role}"

    def run(
        self, role: str, argv: Sequence[str], stdin: str = ""
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ip", "netns", "exec", self.ns(role), *argv],
            input=stdin, capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip

    def edge_run(self, argv: Sequence[str], stdin: str) -> subprocess.CompletedProcess[str]:
        if argv[0] == "conntrack" and not self.forget:
            return subprocess.CompletedProcess(argv, 0, "", "")
        return self.run("edge", argv, stdin)

    def agent(self) -> PortAgent:
        return PortAgent(root=self.root, run=self.edge_run, tailnet=lambda: self.status)

    def moving_to(self, agent: PortAgent, address: str) -> Callable[[], None]:
        """What happens when tailscaled starts saying gtr6 is at `address`."""

        def moved() -> None:
            self.learn(address)
            agent.apply()

        return moved

    def learn(self, address: str | None) -> None:
        """What tailscaled's status says of gtr6 from now on."""
        peers = {"n": {"DNSName": f"{HOST}.", "TailscaleIPs": [address]}} if address else {}
        self.status = {"BackendState": "Running", "Peer": peers}

    def python(self, role: str, *args: object) -> Any:
        done = self.run(role, [sys.executable, "-c", SCRIPT, *map(str, args)])
        return json.loads(done.stdout)

    def serve(self, role: str, kind: str, address: str, port: int) -> None:
        server = subprocess.Popen(
            ["ip", "netns", "exec", self.ns(role), sys.executable, "-c", SCRIPT, "server",
             kind, address, str(port)],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.servers.append(server)
        assert server.stdout is not None and server.stdout.readline() == "ready\n"

    def flow(self, seconds: float, then: Any) -> list[tuple[float, str]]:
        """UDP ticks from one client socket for `seconds`; `then()` runs a second in.

        Each answer with its time: negative before `then()` began, positive after it ended.
        """
        process = subprocess.Popen(
            ["ip", "netns", "exec", self.ns("client"), sys.executable, "-c", SCRIPT, "flow",
             EDGE, "27015", str(seconds)],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert process.stdout is not None
        started = json.loads(process.stdout.readline())["started"]
        time.sleep(1)
        began = time.time()
        then()
        ended = time.time()
        out, _ = process.communicate(timeout=30)
        assert ended - started < seconds - 0.5
        return [
            (at - began if at < began else max(at - ended, 0.0), reply)
            for at, reply in json.loads(out)
        ]

    def dropped(self) -> int:
        listing = self.run("edge", ["nft", "-j", "list", "table", "ip", TABLE]).stdout
        return sum(
            item["rule"]["expr"][-2]["counter"]["packets"]
            for item in json.loads(listing)["nftables"]
            if "rule" in item and any("counter" in expr for expr in item["rule"]["expr"])
        )


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    lab = Lab(f"hltpf{secrets.token_hex(2)}", tmp_path)
    created: list[str] = []
    try:
        for role in ("client", "edge", "upstream"):
            subprocess.run(["ip", "netns", "add", lab.ns(role)], check=True)
            created.append(lab.ns(role))
            lab.run(role, ["ip", "link", "set", "lo", "up"])
            lab.run(role, ["sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0"])
        wires = [
            ("client", "eth0", "edge", "eth0", 1500, 1500),
            # The tailnet side: tailscale0's MTU on the edge, a LAN's beyond it.
            ("edge", "tailscale0", "upstream", "tail", 1280, 1500),
        ]
        for left, left_link, right, right_link, left_mtu, right_mtu in wires:
            lab.run(left, ["ip", "link", "add", left_link, "type", "veth", "peer", right_link,
                           "netns", lab.ns(right)])  # fmt: skip
            lab.run(left, ["ip", "link", "set", left_link, "mtu", str(left_mtu), "up"])
            lab.run(right, ["ip", "link", "set", right_link, "mtu", str(right_mtu), "up"])
        setup = {
            "client": [f"addr add {CLIENT}/24 dev eth0", f"route add default via {EDGE}"],
            "edge": [f"addr add {EDGE}/24 dev eth0", "addr add 100.64.0.1/32 dev tailscale0",
                     "route add 100.64.0.0/10 dev tailscale0"],
            "upstream": [f"addr add {FIRST}/32 dev tail", f"addr add {SECOND}/32 dev tail",
                         "route add 100.64.0.1 dev tail", "route add default via 100.64.0.1"],
        }  # fmt: skip
        for role, commands in setup.items():
            for command in commands:
                assert lab.run(role, ["ip", *command.split()]).returncode == 0, command
        lab.run("edge", ["sysctl", "-qw", "net.ipv4.ip_forward=1"])
        forwarding = tmp_path / "proc/sys/net/ipv4/ip_forward"  # the agent's; set above
        forwarding.parent.mkdir(parents=True)
        forwarding.write_text("1\n")
        (tmp_path / PORTS_FILE.lstrip("/")).parent.mkdir(parents=True)
        (tmp_path / PORTS_FILE.lstrip("/")).write_text(json.dumps(PORTS))
        for address in (FIRST, SECOND):
            lab.serve("upstream", "udp", address, 27015)
        lab.serve("upstream", "tcp", FIRST, 25566)
        yield lab
    finally:
        for server in lab.servers:
            server.kill()
            server.wait(timeout=10)
        for name in created:
            subprocess.run(["ip", "netns", "delete", name], check=False)


def test_udp_and_tcp_reach_the_upstream_and_answer_from_the_edge(lab: Lab) -> None:
    lab.learn(FIRST)
    lab.agent().apply()
    udp = lab.python("client", "exchange", EDGE, 27015)
    # The upstream sees the edge's tailnet address; the client sees the edge's public one.
    assert udp == {"reply": f"{FIRST} 100.64.0.1 hello", "from": f"{EDGE}:27015"}
    tcp = lab.python("client", "fetch", EDGE, 25565)
    assert tcp["head"].startswith(f"{FIRST} 100.64.0.1 mss=")
    assert tcp["bytes"] == DOWNLOAD


def test_a_tcp_handshake_into_the_tailnet_gets_an_mss_that_fits_tailscale0(lab: Lab) -> None:
    lab.learn(FIRST)
    lab.agent().apply()
    forwarded = lab.python("client", "fetch", EDGE, 25565)
    assert int(forwarded["head"].rsplit("=", 1)[1]) <= 1280 - 40
    assert forwarded["bytes"] == DOWNLOAD


def test_negative_twin_without_the_clamp_the_upstream_would_send_full_size(lab: Lab) -> None:
    """Segments tailscale0 cannot carry: where path MTU discovery is broken, a black hole."""
    lab.learn(FIRST)
    script = ruleset(targets(read_forwards(json.dumps(PORTS)), {HOST: FIRST}))
    clamp = next(line for line in script.splitlines() if "maxseg" in line)
    assert lab.run("edge", ["nft", "-f", "-"], script.replace(clamp, "")).returncode == 0
    fetched = lab.python("client", "fetch", EDGE, 25565)
    assert int(fetched["head"].rsplit("=", 1)[1]) > 1280 - 40


def test_a_flow_begun_before_the_upstream_was_known_is_forwarded_once_it_is(lab: Lab) -> None:
    lab.learn(None)
    agent = lab.agent()
    agent.apply()

    seen = lab.flow(2.5, lab.moving_to(agent, FIRST))
    assert not [reply for at, reply in seen if at < 0]
    assert [reply for at, reply in seen if at > 0.5] and all(
        reply.startswith(FIRST) for at, reply in seen if at > 0
    )


def test_negative_twin_tracked_while_waiting_the_flow_stays_dead(lab: Lab) -> None:
    lab.learn(None)
    waiting = ruleset(targets(read_forwards(json.dumps(PORTS)), {}))
    untracked = [line for line in waiting.splitlines() if "notrack" in line]
    assert untracked
    for line in untracked:
        waiting = waiting.replace(line + "\n", "")
    assert lab.run("edge", ["nft", "-f", "-"], waiting).returncode == 0
    seen = lab.flow(2.5, lab.moving_to(lab.agent(), FIRST))
    assert seen == []  # its conntrack entry keeps it on the edge itself


def test_a_flow_follows_its_upstream_to_a_new_address(lab: Lab) -> None:
    lab.learn(FIRST)
    agent = lab.agent()
    agent.apply()

    seen = lab.flow(2.5, lab.moving_to(agent, SECOND))
    assert {reply.split()[0] for at, reply in seen if at < 0} == {FIRST}
    assert {reply.split()[0] for at, reply in seen if at > 0.2} == {SECOND}


def test_negative_twin_without_forgetting_the_flow_stays_on_the_old_address(lab: Lab) -> None:
    lab.forget = False
    lab.learn(FIRST)
    agent = lab.agent()
    agent.apply()

    seen = lab.flow(2.5, lab.moving_to(agent, SECOND))
    assert {reply.split()[0] for _, reply in seen} == {FIRST}


def test_the_internet_cannot_route_into_the_tailnet_through_the_edge(lab: Lab) -> None:
    lab.learn(FIRST)
    lab.agent().apply()
    assert lab.python("client", "exchange", FIRST, 27015) == {"reply": None}
    assert lab.dropped() >= 1


def test_negative_twin_without_the_table_forwarding_lets_it_through(lab: Lab) -> None:
    lab.learn(FIRST)
    seen = lab.python("client", "exchange", FIRST, 27015)
    assert seen["reply"] == f"{FIRST} {CLIENT} hello"  # the hole: no masquerade, no guard


def test_no_ports_leave_no_table(lab: Lab) -> None:
    lab.learn(FIRST)
    agent = lab.agent()
    agent.apply()
    (lab.root / PORTS_FILE.lstrip("/")).write_text("[]\n")
    assert agent.apply() == "no ports forwarded"
    assert lab.run("edge", ["nft", "list", "table", "ip", TABLE]).returncode != 0
    assert lab.python("client", "exchange", EDGE, 27015) == {"reply": None}
