"""The port agent: keeps the forwarding table (edge/forwards.py) true to ports.json and the tailnet.

    python3 -m homelab_tunnel.edge.port_agent check FILE  the config agent's check of a new list
    python3 -m homelab_tunnel.edge.port_agent apply       now: bootstrap's step, the unit's reload
    python3 -m homelab_tunnel.edge.port_agent watch       homelab-tunnel-ports.service
    python3 -m homelab_tunnel.edge.port_agent status      what is forwarded where, as JSON

An upstream named by machine is found by its MagicDNS name in tailscaled's
status, asked over the LocalAPI socket (no process per look), every few
seconds while any port needs a name: a machine that joins after the config,
or comes back with a new address, is forwarded to within seconds. A status
that cannot be read, or of a tailscaled not Running, keeps the addresses
recorded last, so a tailscaled restart never drops forwarding. The table is
replaced in one nft transaction, and only when it would change. The status
lives in /run: it is rebuilt at every boot.

NAT is decided at a connection's first packet and kept in its conntrack
entry, which a steady UDP stream keeps alive for ever: when a port's upstream
moves to another address or the port goes, the entries DNATed to the old
address are deleted (`conntrack -D`), so the next packet takes the new rule.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from homelab_tunnel.edge.filelock import locked
from homelab_tunnel.edge.forwards import (
    PLACEHOLDER,
    Forward,
    known_addresses,
    read_forwards,
    ruleset,
    status_document,
    tailnet_addresses,
    targets,
)

PORTS_FILE = "/etc/homelab-tunnel/ports.json"
STATUS_FILE = "/run/homelab-tunnel/ports-status.json"
LOCK = "/run/homelab-tunnel/ports.lock"
IP_FORWARD = "/proc/sys/net/ipv4/ip_forward"
TAILSCALED_SOCKET = "/run/tailscale/tailscaled.sock"
INTERVAL = 5.0

Runner = Callable[[Sequence[str], str], subprocess.CompletedProcess[str]]
Tailnet = Callable[[], Mapping[str, Any] | None]


def run_command(argv: Sequence[str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            list(argv), input=stdin, capture_output=True, text=True, timeout=60, check=False
        )
    except FileNotFoundError:
        return subprocess.CompletedProcess(argv, 127, "", f"{argv[0]}: command not found")


class _UnixConnection(http.client.HTTPConnection):
    """HTTP over tailscaled's socket; the Host is the one the LocalAPI accepts
    (ipn/localapi/localapi.go, validHost: "local-tailscaled.sock")."""

    def __init__(self, path: str) -> None:
        super().__init__("local-tailscaled.sock", timeout=5)
        self.socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.socket_path)
        self.sock = sock


def local_status(path: str = TAILSCALED_SOCKET) -> Mapping[str, Any] | None:
    """tailscaled's status (what `tailscale status --json` prints); None when it does not answer."""
    connection = _UnixConnection(path)
    try:
        connection.request("GET", "/localapi/v0/status")
        answer = connection.getresponse()
        body = answer.read()
        if answer.status != 200:
            return None
        document = json.loads(body)
    except (OSError, ValueError, http.client.HTTPException):
        return None
    finally:
        connection.close()
    return document if isinstance(document, dict) else None


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Refused(Exception):
    """A list or table the kernel would not take; the message is nft's last line."""


class PortAgent:
    def __init__(
        self,
        *,
        root: Path = Path("/"),
        run: Runner = run_command,
        tailnet: Tailnet | None = None,
    ) -> None:
        self.root = root
        self.run = run
        self.tailnet = tailnet or (lambda: local_status(str(self.path(TAILSCALED_SOCKET))))
        self.applied: str | None = None  # the script last applied by this process

    def path(self, inside: str) -> Path:
        return self.root / inside.lstrip("/")

    def forwards(self) -> list[Forward]:
        try:
            text = self.path(PORTS_FILE).read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        try:
            return read_forwards(text)
        except ValueError as exc:
            raise Refused(f"{PORTS_FILE}: {exc}") from None

    def status(self) -> dict[str, Any] | None:
        try:
            return dict(json.loads(self.path(STATUS_FILE).read_text()))
        except (FileNotFoundError, ValueError, TypeError):
            return None

    def addresses(self, forwards: Sequence[Forward]) -> dict[str, str]:
        """The upstreams' addresses: tailscaled's now, else the ones recorded last."""
        if all(forward.upstream_address for forward in forwards):
            return {}
        current = self.tailnet()
        if current is None or current.get("BackendState") != "Running":
            return known_addresses(self.status() or {})  # restarting, logged out: no news
        return tailnet_addresses(current)

    # -- the three verbs -------------------------------------------------------

    def check(self, candidate: Path) -> str:
        """A new ports.json, as the kernel would take it (`nft -c`); nothing changes."""
        try:
            forwards = read_forwards(candidate.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise Refused(f"not a port list: {exc}") from None
        addresses = self.addresses(forwards)
        chosen = [
            (forward, address or PLACEHOLDER) for forward, address in targets(forwards, addresses)
        ]
        done = self.run(["nft", "-c", "-f", "-"], ruleset(chosen))
        if done.returncode != 0:
            raise Refused(f"nft refuses the table: {_last_line(done)}")
        return f"{len(forwards)} port(s) checked by nft"

    def apply(self) -> str:
        """The table for ports.json and the addresses now; one line saying what is forwarded."""
        forwards = self.forwards()
        chosen = targets(forwards, self.addresses(forwards))
        script = ruleset(chosen)
        error = None
        previous = self.status() or {}
        if script != self.applied:
            if forwards:
                self.path(IP_FORWARD).write_text("1\n")
            done = self.run(["nft", "-f", "-"], script)
            if done.returncode == 0:
                self.applied = script
                self._forget_moved(previous, chosen)
            else:
                error = _last_line(done)
        document = status_document(chosen, at=now(), error=error)
        if {**previous, "at": None} != {**document, "at": None}:
            _write(self.path(STATUS_FILE), json.dumps(document, indent=1) + "\n")
        if error:
            raise Refused(f"nft did not apply the forwarding table: {error}")
        return summary(chosen)

    def _forget_moved(
        self, previous: Mapping[str, Any], chosen: Sequence[tuple[Forward, str | None]]
    ) -> None:
        """Delete the flows DNATed to an address a port no longer goes to (see above)."""
        now_at = {
            (forward.protocol, forward.ports): (address, forward.upstream_port)
            for forward, address in chosen
        }
        for entry in previous.get("ports") or []:
            if not isinstance(entry, dict) or not entry.get("address"):
                continue
            key = (str(entry.get("protocol")), str(entry.get("port")))
            if now_at.get(key) == (entry["address"], entry.get("upstream_port")):
                continue
            single = "-" not in str(entry.get("port"))
            port = ["--reply-port-src", str(entry.get("upstream_port"))] if single else []
            self.run(
                ["conntrack", "-D", "-p", str(entry.get("protocol")), "--dst-nat",
                 "--reply-src", str(entry["address"]), *port],
                "",
            )  # fmt: skip

    def watch(self, interval: float = INTERVAL) -> None:
        last = ""
        while True:
            try:
                with locked(self.path(LOCK)):
                    said = self.apply()
            except Refused as exc:
                said = f"refused: {exc}"
            if said != last:
                print(f"homelab-tunnel ports: {said}", flush=True)
                last = said
            time.sleep(interval)


def summary(chosen: Sequence[tuple[Forward, str | None]]) -> str:
    if not chosen:
        return "no ports forwarded"
    parts = [
        f"{forward.label} -> {forward.upstream}:{forward.upstream_port} "
        + (f"({address})" if address else "(waiting for its tailnet address)")
        for forward, address in chosen
    ]
    return "forwarding " + "; ".join(parts)


def _last_line(done: subprocess.CompletedProcess[str]) -> str:
    lines = (done.stderr or done.stdout or "").strip().splitlines()
    return lines[0][:300] if lines else f"exit code {done.returncode}"


def _write(path: Path, content: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(content)
    temporary.replace(path)


def main(argv: Sequence[str], env: Mapping[str, str]) -> int:
    verbs = ("check", "apply", "watch", "status")
    if not argv or argv[0] not in verbs or len(argv) != (2 if argv[0] == "check" else 1):
        print(
            "usage: python3 -m homelab_tunnel.edge.port_agent check FILE|apply|watch|status",
            file=sys.stderr,
        )
        return 2
    agent = PortAgent(root=Path(env.get("HOMELAB_TUNNEL_ROOT") or "/"))
    try:
        if argv[0] == "check":
            print(agent.check(Path(argv[1])))
        elif argv[0] == "status":
            print(json.dumps(agent.status() or {}, indent=1))
        elif argv[0] == "apply":
            with locked(agent.path(LOCK)):
                print(agent.apply())
        else:
            agent.watch()
    except (Refused, OSError) as exc:
        print(f"ports: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], os.environ))
