"""The droplet: a box that can be wiped and rebuilt, and a state volume that outlives it.

`start()` does what user_data and bootstrap.sh do on a real droplet, minus
package installs and systemd: cloud-init's write_files and unpack step, then
bootstrap's step 4 (the rendered Headscale files installed, Headscale with the
DERP address from the metadata service, the edge joined by the bundle's own
join-edge.sh) and step 5 (the Caddyfile installed and validated, Caddy
started), and its last line in bootstrap-status. `stop()` and
`wipe_all_but_volume()` are a droplet going away; `start()` again on the same
volume is its replacement booting.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from homelab_tunnel.render.caddyfile import CA_ROOTS_PATH
from homelab_tunnel.render.user_data import CONF, LIB
from support.lab.addresses import RESERVED_IP, Droplet
from support.lab.boxes import Box
from support.lab.deploy import (
    DeployedFile,
    env_file,
    read_unit,
    unpack_command,
    volume_directories,
    write_files,
)
from support.lab.network import EDGE_LINK, Internet
from support.lab.nodes import TailscaleNode
from support.lab.processes import RunState
from support.lab.shell import LabError, wait_for

# bootstrap.sh step 4 and 5: rendered file -> where the daemon reads it.
INSTALLS = {
    f"{CONF}/headscale.yaml": "/etc/headscale/config.yaml",
    f"{CONF}/policy.hujson": "/etc/headscale/policy.hujson",
    f"{CONF}/Caddyfile": "/etc/caddy/Caddyfile",
}
BOOTSTRAP_STATUS = "/var/lib/homelab-tunnel/bootstrap-status"
UNITS = "/etc/systemd/system"
METADATA_PORT = 8169
WEBHOOK_PORT = 9911
WEBHOOK_URL = f"http://127.0.0.1:{WEBHOOK_PORT}/homelab-tunnel"
SERVICES = Path(__file__).resolve().parent / "box_services.py"
# In the run's directory: the PID whose namespaces are the edge's (ssh's stand-in enters them).
HOLDER_FILE = "edge.holder"


class Edge:
    """The edge box, its volume, and the daemons bootstrap starts."""

    def __init__(
        self,
        *,
        state: RunState,
        internet: Internet,
        droplet: Droplet,
        user_data: str,
        hosts: str,
        tools: dict[str, Path],
        python: str,
    ) -> None:
        self.state = state
        self.internet = internet
        self.droplet = droplet
        self.user_data = user_data
        self.hosts = hosts
        self.tools = tools  # name -> program, on the box's PATH; see use_headscale()
        self.python = python
        self.box = Box(state, "edge")
        self.node = TailscaleNode(self.box, CA_ROOTS_PATH)
        self.volume = state.directory / "volume"
        self.holder_file = state.directory / HOLDER_FILE
        self.join_output = ""

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> None:
        """Bring up Headscale, the edge's node and Caddy; on a new droplet, boot it first.

        After `stop()` this restarts the daemons on the same droplet; after
        `wipe_all_but_volume()` it boots a new one on the volume.
        """
        if self.box.holder is None:
            self.boot()
        self.start_headscale()
        self.join()
        self.start_caddy()
        name = env_file(self.box.path(f"{CONF}/edge.env").read_text())["EDGE_NAME"]
        self.box.write(BOOTSTRAP_STATUS, f"ready: edge ready: {name} on {RESERVED_IP}\n")

    def boot(self) -> None:
        """A fresh box on the volume, with user_data's files in place (cloud-init's part)."""
        self.box.create()
        self.internet.attach_droplet(self.box, self.droplet)
        binds = {}
        for system, on_volume in volume_directories().items():
            (self.volume / on_volume).mkdir(parents=True, exist_ok=True)
            binds[system] = self.volume / on_volume
        self.box.private_mounts(hosts=self.hosts, tools=self.tools, binds=binds)
        assert self.box.holder is not None
        self.holder_file.write_text(str(self.box.holder.pid))
        for file in self.files():
            self.box.write(file.path, file.content, file.mode)
        self.box.run(unpack_command(self.user_data))

    def files(self) -> list[DeployedFile]:
        return write_files(self.user_data)

    def start_headscale(self) -> None:
        for source, target in INSTALLS.items():
            if "headscale" in target:
                self.box.run(["install", "-D", "-m", "0644", source, target])
        self.box.run(["mkdir", "-p", "/run/headscale"])
        # 20-derp-address.conf: the droplet's own addresses from the metadata service.
        env = {
            "HEADSCALE_DERP_SERVER_IPV4": self.droplet.own,
            "HEADSCALE_DERP_SERVER_IPV6": "",
            "HOME": "/var/lib/headscale",
        }
        self.box.spawn("headscale", ["headscale", "serve"], env=env)
        wait_for("Headscale /health on 127.0.0.1:8080", self._healthy, 30, 0.05)

    def _healthy(self) -> bool:
        probe = ["curl", "-fsS", "--max-time", "2", "http://127.0.0.1:8080/health"]
        return self.box.run(probe, check=False).returncode == 0

    def join(self) -> None:
        """tailscaled, then the bundle's join-edge.sh exactly as bootstrap runs it."""
        self.node.start()
        name = env_file(self.box.path(f"{CONF}/edge.env").read_text())["EDGE_NAME"]
        done = self.box.run([f"{LIB}/join-edge.sh"], env={"EDGE_NAME": name}, timeout=180)
        self.join_output = done.stdout + done.stderr

    def start_caddy(self) -> None:
        self.box.run(["install", "-D", "-m", "0644", f"{CONF}/Caddyfile", "/etc/caddy/Caddyfile"])
        self.box.run(
            ["caddy", "validate", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile"]
        )
        # Debian's caddy.service: user caddy, whose home is /var/lib/caddy (on the volume).
        self.box.spawn(
            "caddy",
            ["caddy", "run", "--environ", "--config", "/etc/caddy/Caddyfile"],
            env={"HOME": "/var/lib/caddy"},
        )

    def use_headscale(self, binary: Path) -> None:
        """Run another Headscale release from the next `start()` (an upgrade or a downgrade)."""
        self.tools["headscale"] = binary
        if self.box.holder is not None:
            link = self.box.path("/usr/local/bin/headscale")
            link.unlink()
            link.symlink_to(binary)

    def stop(self) -> None:
        """Every daemon down, in the reverse order of start."""
        for name in reversed(list(self.box.daemons)):
            self.box.stop(name)

    def wipe_all_but_volume(self) -> None:
        """The droplet is gone: its namespaces, root disk and link; the volume stays."""
        self.box.destroy()
        self.internet.detach(EDGE_LINK)
        shutil.rmtree(self.box.disk, ignore_errors=True)

    def replace(self, droplet: Droplet) -> None:
        """A new droplet on the same volume and reserved IP, from the same user_data."""
        self.stop()
        self.wipe_all_but_volume()
        self.droplet = droplet
        self.start()

    # -- commands on the edge -----------------------------------------------

    def headscale(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.box.run(["headscale", *args], check=check)

    def nodes(self) -> list[dict[str, Any]]:
        return list(json.loads(self.headscale("nodes", "list", "-o", "json").stdout) or [])

    def reload_caddy(self) -> None:
        """Debian caddy.service's ExecReload."""
        self.box.run(["caddy", "reload", "--config", "/etc/caddy/Caddyfile", "--force"])

    def noise_key_sha256(self) -> str:
        return hashlib.sha256(
            (self.volume / "headscale-lib/noise_private.key").read_bytes()
        ).hexdigest()

    def certificates(self) -> dict[str, Path]:
        """Caddy's certificates on the volume, by name."""
        storage = self.volume / "caddy/.local/share/caddy/certificates"
        return {path.parent.name: path for path in sorted(storage.glob("*/*/*.crt"))}

    def run_unit(
        self, unit: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """A deployed service's ExecStart with its Environment(File)= and StateDirectory=."""
        service = read_unit(self.box.path(f"{UNITS}/{unit}").read_text())
        environment = dict(service.environment)
        for path in service.environment_files:
            environment.update(env_file(self.box.path(path).read_text()))
        if service.state_directory:
            self.box.run(["mkdir", "-p", service.state_directory])
            environment["STATE_DIRECTORY"] = service.state_directory
        return self.box.run(service.exec_start, env={**environment, **(env or {})}, check=False)

    def undo_egress(self) -> None:
        """Back to DigitalOcean's default routing (the product never needs this: egress
        off is a new droplet)."""
        for priority in ("900", "901", "1000"):
            self.box.run(["ip", "rule", "del", "priority", priority], check=False)
        self.box.run(["ip", "route", "flush", "table", "100"], check=False)
        self.box.run(
            ["ip", "route", "replace", "default", "via", self.droplet.own_gateway, "dev", "eth0"]
        )

    # -- what a droplet has around it ---------------------------------------

    def start_metadata(self) -> str:
        """DigitalOcean's metadata service for this droplet; its base URL."""
        values = {
            "interfaces/public/0/ipv4/address": self.droplet.own,
            "interfaces/public/0/ipv4/gateway": self.droplet.own_gateway,
            "interfaces/public/0/anchor_ipv4/address": self.droplet.anchor,
            "interfaces/public/0/anchor_ipv4/gateway": self.droplet.anchor_gateway,
            "reserved_ip/ipv4/active": "true",
            "reserved_ip/ipv4/ip_address": RESERVED_IP,
        }
        document = self.state.directory / "metadata.json"
        document.write_text(json.dumps(values))
        self.box.spawn("metadata", [self.python, SERVICES, "metadata", METADATA_PORT, document])
        url = f"http://127.0.0.1:{METADATA_PORT}/metadata/v1"
        probe = ["curl", "-fsS", f"{url}/reserved_ip/ipv4/active"]
        wait_for(
            "metadata service", lambda: self.box.run(probe, check=False).stdout == "true", 10, 0.05
        )
        return url

    def start_webhook(self) -> Path:
        """The receiver health.env's webhook points at; the file its POSTs are appended to."""
        record = self.state.directory / "webhook.jsonl"
        if "webhook" in self.box.daemons:
            return record
        record.touch()
        self.box.spawn("webhook", [self.python, SERVICES, "webhook", WEBHOOK_PORT, record])
        probe = ["curl", "-sS", "-o", "/dev/null", f"http://127.0.0.1:{WEBHOOK_PORT}/"]
        wait_for(
            "webhook receiver", lambda: self.box.run(probe, check=False).returncode == 0, 10, 0.05
        )
        return record

    def posts(self) -> list[dict[str, Any]]:
        record = self.state.directory / "webhook.jsonl"
        if not record.exists():
            raise LabError("no webhook receiver was started")
        return [json.loads(line) for line in record.read_text().splitlines()]
