"""tailscaled in a box, as Debian's unit runs it, and reading where its traffic goes.

`CurAddr` is set only while the UDP path is trusted (6.5 s after the last
pong, Tailscale's trustUDPAddrDuration), so every "is it direct?" starts with
a `tailscale ping`; `Relay` is the peer's home DERP region and is set even
when the path is direct, so it decides nothing on its own.
"""

from __future__ import annotations

import json
import time
from typing import Any

from support.lab.boxes import Box
from support.lab.processes import Daemon
from support.lab.shell import LabError, wait_for

SOCKET = "/run/tailscale/tailscaled.sock"


class TailscaleNode:
    """One tailscaled and its CLI (both on the box's PATH as tailscaled / tailscale)."""

    def __init__(self, box: Box, roots: str) -> None:
        self.box = box
        # Go reads SSL_CERT_FILE once, at the first TLS handshake: the lab's roots
        # must exist before tailscaled starts (a droplet has them in its system store).
        self.roots = roots

    def start(self, name: str = "tailscaled") -> Daemon:
        """The Debian unit's ExecStart (PORT=41641), without log upload."""
        self.box.run(["mkdir", "-p", "/run/tailscale", "/var/lib/tailscale"])
        daemon = self.box.spawn(
            name,
            [
                "tailscaled",
                "--state=/var/lib/tailscale/tailscaled.state",
                f"--socket={SOCKET}",
                "--port=41641",
                "--no-logs-no-support",
            ],
            env={"SSL_CERT_FILE": self.roots, "HOME": "/root"},
        )
        wait_for(f"{self.box.role}: tailscaled socket", self._answers, 20, 0.05)
        return daemon

    def _answers(self) -> bool:
        return self.cli("status", "--json", check=False).stdout.strip().startswith("{")

    def cli(self, *args: str, check: bool = True, timeout: float = 60) -> Any:
        return self.box.run(["tailscale", *args], check=check, timeout=timeout)

    def status(self) -> dict[str, Any]:
        return dict(json.loads(self.cli("status", "--json").stdout))

    def peer(self, name: str) -> dict[str, Any]:
        """The peer whose host name or first MagicDNS label is `name` ({} if none)."""
        for peer in (self.status().get("Peer") or {}).values():
            if name in (peer.get("HostName"), str(peer.get("DNSName", "")).split(".")[0]):
                return dict(peer)
        return {}

    def ping(self, name: str, count: int = 10) -> str:
        """`tailscale ping` (stops at the first direct pong); its output either way."""
        done = self.cli("ping", "-c", str(count), name, check=False)
        return done.stdout + done.stderr

    def wait_direct(self, name: str, timeout: float = 30) -> str:
        """Ping until a direct path is in use; its endpoint (CurAddr)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.ping(name, count=5)
            address = str(self.peer(name).get("CurAddr") or "")
            if address:
                return address
        raise LabError(f"{self.box.role}: no direct path to {name} within {timeout:g}s")

    def wait_relayed(self, name: str, timeout: float = 30) -> dict[str, Any]:
        """Keep traffic flowing until the peer has no direct path; its status entry."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.cli(
                "ping", "--until-direct=false", "-c", "1", "--timeout", "1s", name, check=False
            )
            peer = self.peer(name)
            if peer.get("Active") and not peer.get("CurAddr"):
                return peer
            time.sleep(0.25)
        raise LabError(f"{self.box.role}: path to {name} still direct after {timeout:g}s")
