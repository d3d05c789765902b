"""The homelab behind its NAT router: the app, tailscaled, and the join `join-command` prints."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from support.lab.addresses import HOME_LAN, HOME_ROUTER_WAN, RESERVED_IP
from support.lab.boxes import Box
from support.lab.network import Internet, home_network
from support.lab.nodes import TailscaleNode
from support.lab.processes import RunState
from support.lab.shell import wait_for

APP = Path(__file__).resolve().parent / "app.py"
JOIN_SCRIPT = "/run/homelab-tunnel-join.sh"


class Home:
    """A home router (masquerade) and the homelab machine behind it."""

    def __init__(self, state: RunState, roots: Path) -> None:
        self.router = Box(state, "homert")
        self.box = Box(state, "home")
        self.node = TailscaleNode(self.box, str(roots))

    def create(
        self,
        internet: Internet,
        *,
        hosts: str,
        tools: dict[str, Path],
        binds: dict[str, Path] | None = None,
    ) -> None:
        self.router.create()
        self.box.create()
        home_network(internet, self.router, self.box, HOME_ROUTER_WAN, HOME_LAN)
        self.box.private_mounts(hosts=hosts, tools=tools, binds=binds)

    def start_app(self, sites: dict[int, str], *, daemon: str = "app") -> None:
        """The sites' services: one port per site, as the config names them; `daemon`: the
        process's name, for one more beside the first."""
        specs = [f"{port}={name}" for port, name in sites.items()]
        self.box.spawn(daemon, [sys.executable, APP, *specs])
        for port in sites:
            probe = ["curl", "-fsS", "-o", "/dev/null", f"http://127.0.0.1:{port}/"]
            wait_for(f"home app on {port}", lambda p=probe: self._answers(p), 10, 0.05)

    def _answers(self, probe: list[str]) -> bool:
        return self.box.run(probe, check=False).returncode == 0

    def join(self, script: str) -> subprocess.CompletedProcess[str]:
        """Run the printed script as its header says: `EDGE=<reserved IP> bash join.sh`."""
        self.box.write(JOIN_SCRIPT, script, 0o755)
        return self.box.run(
            ["bash", JOIN_SCRIPT], env={"EDGE": RESERVED_IP}, check=False, timeout=240
        )
