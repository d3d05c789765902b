"""The droplet: a box that can be wiped and rebuilt, and a state volume that outlives it.

`start()` boots the droplet as DigitalOcean and cloud-init would (a fresh box
on the volume, user_data's write_files and unpack step) and runs bootstrap.sh
itself, the deployed file, without the two steps that need a disk and apt
(bootstrap.py says what stands in for them). `stop()` and
`wipe_all_but_volume()` are a droplet going away; `start()` again on the same
volume is its replacement booting, and `wipe_volume()` makes that volume blank.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

from homelab_tunnel.render.user_data import CONF, LIB
from support.lab.addresses import RESERVED_IP, Droplet
from support.lab.bootstrap import BootstrapRun, after_the_skipped_steps, run_bootstrap
from support.lab.boxes import Box
from support.lab.deploy import DeployedFile, unpack_command, volume_directories, write_files
from support.lab.network import EDGE_LINK, Internet
from support.lab.nodes import TailscaleNode
from support.lab.processes import RunState
from support.lab.shell import LabError, wait_for
from support.lab.units import (
    DPKG_QUERY,
    PACKAGES,
    SYSTEMCTL,
    SYSTEMD_RUN,
    Systemd,
    daemon_name,
    full_name,
    packages_file,
)

# DigitalOcean's metadata service answers at this address, across a link-local
# route, from outside the droplet: the stand-in does the same from a box of its
# own, so the edge's metadata guard (bootcmd's nft rule) applies to it exactly.
METADATA_ADDRESS = "169.254.169.254"
METADATA_LINK = "metadata0"
WEBHOOK_PORT = 9911
WEBHOOK_URL = f"http://127.0.0.1:{WEBHOOK_PORT}/homelab-tunnel"
SERVICES = Path(__file__).resolve().parent / "box_services.py"
BACKUPS_PROBE = Path(__file__).resolve().parent / "box_backups.py"
RUN_AS_USERS = ("headscale", "litestream")
# In the run's directory: the PID whose namespaces are the edge's (ssh's stand-in enters them).
HOLDER_FILE = "edge.holder"
# The kernel's boot_id, as the box sees it: new at every boot, gone with /run.
BOOT_ID = "/run/homelab-tunnel-lab/boot_id"


class Edge:
    """The edge box, its volume, and the units bootstrap starts."""

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
        headscale_version: str,
        extra_roots: str = "",
    ) -> None:
        self.state = state
        self.internet = internet
        self.droplet = droplet
        self.user_data = user_data
        self.hosts = hosts
        self.tools = tools  # name -> program, on the box's PATH; see use_headscale()
        self.python = python
        self.headscale_version = headscale_version
        self.extra_roots = extra_roots  # roots a droplet trusts anyway (Spaces' CAs)
        self.box = Box(state, "edge")
        self.metadata = Box(state, "metadata")
        self.node = TailscaleNode(self.box, f"{CONF}/ca-roots.pem")
        self.systemd = Systemd(self.box, python)
        self.volume = state.directory / "volume"
        self.holder_file = state.directory / HOLDER_FILE
        self.bootstrap = BootstrapRun()
        self.software = ""  # what the loader said at the last boot

    # -- lifecycle -----------------------------------------------------------

    def start(self, *, check: bool = True) -> BootstrapRun:
        """Boot a droplet if none runs, then bootstrap.sh; its run (LabError if it failed)."""
        if self.box.holder is None:
            self.boot()
        if "tailscaled" not in self.box.daemons:
            self.node.start()  # the package's unit, started when step 2 installs it
        metadata = self.start_metadata()
        self.bootstrap = run_bootstrap(self.box, {"HOMELAB_TUNNEL_METADATA": metadata})
        if check and self.bootstrap.returncode != 0:
            raise LabError(f"bootstrap.sh failed:\n{self.bootstrap.output[-3000:]}")
        return self.bootstrap

    def boot(self) -> None:
        """A fresh box on the volume, with user_data's files in place (cloud-init's part)."""
        self.box.create()
        self.internet.attach_droplet(self.box, self.droplet)
        binds = {}
        for system, on_volume in volume_directories().items():
            (self.volume / on_volume).mkdir(parents=True, exist_ok=True)
            binds[system] = self.volume / on_volume
        self.box.private_mounts(hosts=self.hosts, tools=self.tools, binds=binds)
        for name in RUN_AS_USERS:  # units run them as headscale
            if name in self.tools:
                self.box.install_program(name, self.tools[name])
        assert self.box.holder is not None
        self.holder_file.write_text(str(self.box.holder.pid))
        self.box.write(BOOT_ID, f"{uuid.uuid4()}\n")
        shims = (("systemctl", SYSTEMCTL), ("systemd-run", SYSTEMD_RUN), ("dpkg-query", DPKG_QUERY))
        for name, shim in shims:
            self.box.write(f"/usr/local/bin/{name}", shim, 0o755)
        for file in self.files():
            self.box.write(file.path, file.content, file.mode)
        self.box.run(unpack_command(self.user_data))
        after_the_skipped_steps(self.box, extra_roots=self.extra_roots)
        self.box.write(PACKAGES, packages_file({"headscale": self.headscale_version}))
        self._boot_services()

    def _boot_services(self) -> None:
        """systemd comes up, and the bootstrap unit's ExecStartPre: the software from the
        config bucket (or, installed before, nothing)."""
        self.systemd = Systemd(self.box, self.python)
        self.systemd.serve()
        software = self.box.run(
            ["python3", "-m", "homelab_tunnel.edge.software", "install"],
            env={"PYTHONPATH": LIB}, check=False, timeout=120,
        )  # fmt: skip
        if software.returncode != 0:
            raise LabError(f"the software loader failed:\n{software.stdout}{software.stderr}")
        self.software = software.stdout.strip()

    def files(self) -> list[DeployedFile]:
        return write_files(self.user_data)

    def start_headscale(self) -> None:
        """Step 6's Headscale part again: the rendered files installed, the unit restarted."""
        for name, target in (("headscale.yaml", "config.yaml"), ("policy.hujson", "policy.hujson")):
            source, path = f"{CONF}/{name}", f"/etc/headscale/{target}"
            self.box.run(["install", "-D", "-m", "0644", source, path])
        self.systemd.restart("headscale")
        wait_for("Headscale /health on 127.0.0.1:8080", self.healthy, 30, 0.05)

    def healthy(self) -> bool:
        probe = ["curl", "-fsS", "--max-time", "2", "http://127.0.0.1:8080/health"]
        return self.box.run(probe, check=False).returncode == 0

    def use_headscale(self, binary: Path, version: str) -> None:
        """Run another Headscale release from the next `start()` (an upgrade or a downgrade)."""
        self.tools["headscale"] = binary
        self.headscale_version = version
        if self.box.holder is not None:
            self.box.install_program("headscale", binary)
            self.box.write(PACKAGES, packages_file({"headscale": version}))

    def stop(self) -> None:
        """Every daemon down, in the reverse order of start."""
        self.systemd.close()
        for name in reversed(list(self.box.daemons)):
            self.box.stop(name)

    def reboot(self, *, check: bool = True) -> BootstrapRun:
        """The same droplet restarts: every daemon stops, /run is emptied, its root disk and
        volume stay, and the boot runs again (systemd, the loader, bootstrap.sh); its run."""
        self.stop()
        self.box.run(["find", "/run", "-mindepth", "1", "-delete"])
        self.box.write(BOOT_ID, f"{uuid.uuid4()}\n")
        # dpkg's record of what is installed is on the root disk: it stays.
        self.box.write(PACKAGES, packages_file({"headscale": self.headscale_version}))
        self._boot_services()
        return self.start(check=check)

    def boot_id(self) -> str:
        """This boot of the droplet: another value after a reboot or on a new droplet."""
        return self.box.path(BOOT_ID).read_text().strip()

    def main_pid(self, unit: str) -> int:
        """The PID of a running service's main process (systemctl show -p MainPID)."""
        daemon = self.box.daemons.get(daemon_name(full_name(unit)))
        if daemon is None or not daemon.running():
            raise LabError(f"{unit} is not running")
        return daemon.pid

    def wipe_all_but_volume(self) -> None:
        """The droplet is gone: its namespaces, root disk and link; the volume stays."""
        self.systemd.close()
        self.box.destroy()
        self.internet.detach(EDGE_LINK)
        shutil.rmtree(self.box.disk, ignore_errors=True)

    def wipe_volume(self) -> None:
        """A blank volume (the droplet must be gone): the restore's starting point."""
        if self.box.holder is not None:
            raise LabError("wipe the droplet before its volume")
        shutil.rmtree(self.volume)

    def replace(
        self, droplet: Droplet, *, blank_volume: bool = False, check: bool = True
    ) -> BootstrapRun:
        """A new droplet on the same volume (or a blank one) and reserved IP, same user_data."""
        self.stop()
        self.wipe_all_but_volume()
        if blank_volume:
            self.wipe_volume()
        self.droplet = droplet
        return self.start(check=check)

    # -- commands on the edge -----------------------------------------------

    def headscale(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.box.run(["headscale", *args], check=check)

    def nodes(self) -> list[dict[str, Any]]:
        return list(json.loads(self.headscale("nodes", "list", "-o", "json").stdout) or [])

    def backups(self, *args: str, timeout: float = 120) -> Any:
        """box_backups.py in the edge box (the edge's own client and Litestream); its JSON."""
        env = {"PYTHONPATH": LIB}
        done = self.box.run(["python3", BACKUPS_PROBE, *args], env=env, timeout=timeout)
        return json.loads(done.stdout)

    def config_status(self) -> dict[str, Any]:
        """The config agent's status (`config_agent status`): applied, latest, refused ..."""
        done = self.box.run(
            ["python3", "-m", "homelab_tunnel.edge.config_agent", "status"], env={"PYTHONPATH": LIB}
        )
        return dict(json.loads(done.stdout))

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
        service = self.systemd.unit(unit)
        environment = self.systemd.environment(service)
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
        """DigitalOcean's metadata service for this droplet; its base URL.

        A new droplet (a new edge box) gets a new link and the stand-in its values.
        """
        url = f"http://{METADATA_ADDRESS}/metadata/v1"
        if METADATA_LINK in self.box.ip("-brief", "link"):
            return url
        if not Path(f"/run/netns/{self.metadata.netns}").exists():
            self.metadata.create()
        self.metadata.stop("metadata")
        # The old droplet's link: a deleted namespace frees its end of a veth only eventually.
        self.metadata.run(["ip", "link", "del", "md0"], check=False)
        self.metadata.ip(
            "link", "add", "md0", "type", "veth", "peer", "name", METADATA_LINK,
            "netns", self.box.netns,
        )  # fmt: skip
        for box, link, address in (
            (self.metadata, "md0", METADATA_ADDRESS),
            (self.box, METADATA_LINK, "169.254.0.2"),
        ):
            box.ip("addr", "add", f"{address}/16", "dev", link)
            box.ip("link", "set", link, "up")
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
        self.metadata.spawn(
            "metadata", [self.python, SERVICES, "metadata", METADATA_ADDRESS, "80", document]
        )
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
