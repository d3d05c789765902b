"""The lab's edge: a booted Debian droplet (tests/support/droplet/) that gets our user_data.

cloud-init runs user_data from the NoCloud seed byte for byte; bootstrap.sh
runs every step under the droplet's own systemd: the loop-device volume
formatted and mounted through fstab, Tailscale and Caddy installed from the
package mirror with their repositories' keys, Headscale's release .deb
downloaded and checked, each package's postinst and units as they are. The
image is what a droplet has from DigitalOcean before user_data: the public
roots it trusts (here the mirror's and the Spaces stand-in's CAs), the
distribution's apt sources (the mirror's Debian), the names it resolves (the
lab's /etc/hosts) and the operator's ssh key.

Scenarios reach it as they reached the old edge box: `edge.box` runs commands
(nsenter into the droplet, outside any unit), reads and writes its files and
its journal (`box.log("headscale")` is `journalctl -u headscale`); operator
commands go over real ssh from the homelab (lab.cli).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from homelab_tunnel.render.user_data import BOOTSTRAP_UNIT, LIB
from support.droplet.cloud import OUTPUT, Cloud, Droplet
from support.droplet.volume import Volume
from support.lab.addresses import Droplet as Addresses
from support.lab.bootstrap import STEP_RECORDS, BootstrapRun
from support.lab.nodes import TailscaleNode
from support.lab.processes import Daemon
from support.lab.shell import BASE_ENV, LabError, run, wait_for
from support.mirror.box import MirrorBox, debian_sources
from support.nspawn import enter

WEBHOOK_PORT = 9911
WEBHOOK_URL = f"http://127.0.0.1:{WEBHOOK_PORT}/homelab-tunnel"
HERE = Path(__file__).resolve().parent
# The lab's probes, copied into the droplet (stdlib only; run by the image's python3).
PROBES = {name: HERE / name for name in ("box_services.py", "box_backups.py", "box_probes.py")}
PROBE_DIR = "/usr/local/lib/lab-probes"
WEBHOOK_RECORD = "/var/lib/lab-webhook.jsonl"
WEBHOOK_UNIT = "lab-webhook.service"
TRUSTED = "/usr/local/share/ca-certificates"
TRUST_STORE = "/etc/ssl/certs/ca-certificates.crt"
DEBIAN_KEYRING = "/usr/share/keyrings/lab-debian-archive.gpg"
# A first boot installs packages from the mirror: minutes on a real droplet, seconds here.
READY_TIMEOUT = 300.0
# Units the scenarios name by the lab's daemon names.
UNITS = {"headscale": "headscale", "caddy": "caddy", "tailscaled": "tailscaled", "ssh": "ssh"}


def image_files(
    *, hosts: str, name: str, mirror: MirrorBox, roots: Mapping[str, str], lower: Path
) -> dict[str, bytes]:
    """What the droplet's image holds before user_data, as DigitalOcean gives it."""
    store = (lower / TRUST_STORE.lstrip("/")).read_bytes()
    files = {
        "/etc/hosts": f"{hosts}127.0.1.1 {name}\n{mirror.hosts_lines()}".encode(),
        "/etc/apt/sources.list.d/debian.list": debian_sources(DEBIAN_KEYRING).encode(),
        DEBIAN_KEYRING: mirror.keyring(armor=False),
    }
    for label, pem in roots.items():  # update-ca-certificates keeps them: they are the image's
        files[f"{TRUSTED}/lab-{label}.crt"] = pem.encode()
        store += pem.encode()
    files[TRUST_STORE] = store
    return files


class MachineBox:
    """The booted droplet as the scenarios use a box: commands, files, journal, namespace."""

    role = "edge"

    def __init__(self, droplet: Droplet) -> None:
        self.droplet = droplet
        self.daemons: dict[str, Daemon] = {}

    @property
    def netns(self) -> str:
        return self.droplet.box.netns

    @property
    def machine(self) -> Any:
        return self.droplet.machine

    def ip(self, *args: str) -> str:
        return self.droplet.box.ip(*args)

    def command(self, argv: Sequence[object], env: Mapping[str, str] | None = None) -> list[str]:
        """nsenter into the droplet with a clean environment, as a root shell would have.
        The lab's probes (`sys.executable box_probes.py ...`, as in any box) run from their
        copies in the droplet with its python3."""
        words = [str(word) for word in argv]
        if words and words[0] == sys.executable:
            words[0] = "python3"
        copies = {str(path): f"{PROBE_DIR}/{name}" for name, path in PROBES.items()}
        words = [copies.get(word, word) for word in words]
        return [*enter(self.machine._leader()), "env", "-i", *_env(env), *words]

    def run(
        self,
        argv: Sequence[object],
        *,
        check: bool = True,
        timeout: float = 60,
        env: Mapping[str, str] | None = None,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        return run(self.command(argv, env), check=check, timeout=timeout, input=input)

    def path(self, inside: str) -> Path:
        return Path(self.machine.path(inside))

    def write(self, inside: str, content: str | bytes, mode: int = 0o644) -> None:
        target = self.path(inside)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content.encode() if isinstance(content, str) else content)
        target.chmod(mode)

    def log(self, name: str) -> str:
        """The unit's journal, every boot of this droplet (it only grows)."""
        unit = UNITS.get(name, name)
        done = self.run(["journalctl", "-q", "-u", unit, "-o", "cat", "--no-pager"], check=False)
        return done.stdout

    def spawn(
        self, name: str, argv: Sequence[object], env: Mapping[str, str] | None = None
    ) -> Daemon:
        """A process in the droplet outside any unit (a probe's listener)."""
        log = self.droplet.box.logs / f"edge-{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as handle:
            process = subprocess.Popen(
                self.command(argv, env),
                stdout=handle,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.droplet.box.state.add_pid(process.pid)
        self.daemons[name] = Daemon(name, process, log)
        return self.daemons[name]

    def stop(self, name: str) -> int | None:
        daemon = self.daemons.pop(name, None)
        return daemon.stop() if daemon else None


def _env(extra: Mapping[str, str] | None = None) -> list[str]:
    values = {"PATH": BASE_ENV["PATH"], "LANG": "C.UTF-8", "HOME": "/root", **(extra or {})}
    return [f"{key}={value}" for key, value in values.items()]


class DropletEdge:
    """The edge: one droplet at a time on the cloud, its volume kept across replacements."""

    def __init__(
        self,
        *,
        cloud: Cloud,
        user_data: str,
        volume: Volume,
        image: dict[str, bytes],
        name: str,
    ) -> None:
        self.cloud = cloud
        self.user_data = user_data
        self.state_volume = volume
        self.image = image
        self.name = name
        self.current: Droplet | None = None
        self._box: MachineBox | None = None
        self.reserved_ip_after: float | None = 0.0

    # -- lifecycle -----------------------------------------------------------

    @property
    def droplet_box(self) -> Droplet:
        if self.current is None:
            raise LabError("no droplet is running")
        return self.current

    @property
    def box(self) -> MachineBox:
        """The current droplet as a box (the same one, with its probes, until it is gone)."""
        droplet = self.droplet_box
        if self._box is None or self._box.droplet is not droplet:
            self._box = MachineBox(droplet)
        return self._box

    @property
    def node(self) -> TailscaleNode:
        """The edge's tailscaled (the package's unit) through its CLI."""
        return TailscaleNode(self.box, TRUST_STORE)  # type: ignore[arg-type]

    @property
    def droplet(self) -> Addresses:
        return self.droplet_box.addresses

    def create(self, *, volume: bool = True) -> Droplet:
        """`terraform apply` of a droplet: created with user_data, the volume attached."""
        files = {**self.image, **self._probes()}
        self.current = self.cloud.create_droplet(
            self.user_data.encode(),
            name=self.name,
            volume=self.state_volume if volume else None,
            reserved_ip_after=self.reserved_ip_after,
            files=files,
        )
        return self.current

    def start(self, *, check: bool = True, timeout: float = READY_TIMEOUT) -> BootstrapRun:
        """A droplet if none runs, then this boot's outcome: "edge ready" or FAILED."""
        if self.current is None:
            self.create()
        outcome = self.droplet_box.outcome(timeout)
        bootstrap = self.bootstrap
        if check and "edge ready" not in outcome:
            raise LabError(f"the droplet's boot failed: {outcome}\n{bootstrap.output[-3000:]}")
        return bootstrap

    def destroy(self) -> None:
        """The droplet is gone (its volume detached, kept)."""
        if self.current is not None:
            self.cloud.destroy(self.current)
            self.current = None

    def replace(self, *, blank_volume: bool = False, check: bool = True) -> BootstrapRun:
        """A new droplet, same user_data and volume (or a blank one): its first boot."""
        self.destroy()
        if blank_volume:
            self.wipe_volume()
        return self.start(check=check)

    def reboot(self, *, check: bool = True) -> BootstrapRun:
        """`systemctl reboot`: the same droplet boots again; its bootstrap at boot (cloud-init
        runs nothing once per instance again, the unit runs at every boot)."""
        box = self.box
        for name in list(box.daemons):  # entered from outside: no unit of the droplet's stops them
            box.stop(name)
        self.droplet_box.reboot()
        return self.wait_ready(check=check)

    def wait_ready(self, *, check: bool = True, timeout: float = READY_TIMEOUT) -> BootstrapRun:
        """This boot's bootstrap to its last line, "edge ready" (or FAILED, with check=False)."""
        wanted = "edge ready" if check else "edge ready|FAILED"
        argv = [
            "journalctl",
            "-b",
            "-u",
            BOOTSTRAP_UNIT,
            "-o",
            "cat",
            "--no-pager",
            f"--grep={wanted}",
        ]
        try:
            wait_for(
                f"bootstrap's '{wanted}' in this boot's journal",
                lambda: self.box.run(argv, check=False).stdout.strip(),
                timeout,
                0.5,
            )
        except LabError as exc:
            raise LabError(f"{exc}\n{self.bootstrap.output[-3000:]}") from None
        return self.bootstrap

    def wipe_volume(self) -> None:
        """All zeros again, as a new volume (the droplet must be gone)."""
        if self.current is not None:
            raise LabError("destroy the droplet before wiping its volume")
        volume = self.state_volume
        with volume.file.open("r+b") as handle:
            handle.truncate(0)
            handle.truncate(volume.size_gb << 30)

    def _probes(self) -> dict[str, bytes]:
        return {f"{PROBE_DIR}/{name}": path.read_bytes() for name, path in PROBES.items()}

    # -- what bootstrap did --------------------------------------------------

    @property
    def bootstrap(self) -> BootstrapRun:
        """This boot's bootstrap attempts, from the unit's journal and the steps' records."""
        box = self.box
        lines = box.run(
            ["journalctl", "-b", "-u", BOOTSTRAP_UNIT, "-o", "json", "--no-pager"], check=False
        ).stdout.splitlines()
        result = BootstrapRun()
        for line in lines:
            entry = json.loads(line)
            message = entry.get("MESSAGE")
            if isinstance(message, str):
                result.lines.append((int(entry["__REALTIME_TIMESTAMP"]) / 1e6, message))
        records = box.path(STEP_RECORDS)
        if records.is_dir():
            result.steps = {path.name: path.read_text().strip() for path in records.iterdir()}
        status = box.path("/var/lib/homelab-tunnel/bootstrap-status")
        ready = status.exists() and status.read_text().startswith("ready:")
        result.returncode = 0 if ready else 1
        return result

    def boot_id(self) -> str:
        """This boot of the droplet (the kernel's boot_id as it sees it): another value after a
        reboot or on a new droplet."""
        return self.box.run(
            ["journalctl", "--list-boots", "-q", "--no-pager", "-n", "1"]
        ).stdout.split()[1]

    def main_pid(self, unit: str) -> int:
        """The PID of a running service's main process (systemctl show -P MainPID)."""
        shown = self.systemctl("show", "-P", "MainPID", UNITS.get(unit, unit)).stdout.strip()
        if not shown or shown == "0":
            raise LabError(f"{unit} is not running")
        return int(shown)

    def config_status(self) -> dict[str, Any]:
        """The config agent's status (`config_agent status`): applied, latest, refused ..."""
        done = self.box.run(
            ["python3", "-m", "homelab_tunnel.edge.config_agent", "status"], env={"PYTHONPATH": LIB}
        )
        return dict(json.loads(done.stdout))

    def publish_hosts(self, hosts: str) -> None:
        """/etc/hosts with `hosts` (the lab's names and the edge's records) in this droplet and
        in the image of the next ones, the droplet's own name and the mirror's kept."""
        text = self.image["/etc/hosts"].decode()
        own = text[text.index("127.0.1.1 ") :]
        self.image["/etc/hosts"] = f"{hosts}{own}".encode()
        if self.current is not None:
            self.box.write("/etc/hosts", self.image["/etc/hosts"])

    def host_key_fingerprint(self) -> str:
        """The droplet's ssh host key (ed25519) as ssh prints it: "SHA256:..."."""
        public = "/etc/ssh/ssh_host_ed25519_key.pub"
        return self.box.run(["ssh-keygen", "-l", "-E", "sha256", "-f", public]).stdout.split()[1]

    def outcome(self, timeout: float = READY_TIMEOUT) -> str:
        return self.droplet_box.outcome(timeout)

    def cloud_init_output(self) -> str:
        return self.droplet_box.machine.read(OUTPUT).decode(errors="replace")

    # -- commands on the edge ------------------------------------------------

    def headscale(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.box.run(["headscale", *args], check=check)

    def nodes(self) -> list[dict[str, Any]]:
        return list(json.loads(self.headscale("nodes", "list", "-o", "json").stdout) or [])

    def backups(self, *args: str, timeout: float = 120) -> Any:
        """box_backups.py in the droplet (the edge's own client and Litestream); its JSON."""
        done = self.box.run(
            ["python3", f"{PROBE_DIR}/box_backups.py", *args],
            env={"PYTHONPATH": LIB},
            timeout=timeout,
        )
        return json.loads(done.stdout)

    def unit_events(self, *units: str) -> list[tuple[float, str, str]]:
        """What systemd said of `units` ("Starting ...", "Finished ...", "Started ..."), with
        the time, every boot of this droplet: [(seconds since the epoch, unit, message)]."""
        argv = ["journalctl", "-o", "json", "--no-pager", *(f"--unit={unit}" for unit in units)]
        events = []
        for line in self.box.run(argv).stdout.splitlines():
            entry = json.loads(line)
            if entry.get("_PID") == "1" and isinstance(entry.get("MESSAGE"), str):
                at = int(entry["__REALTIME_TIMESTAMP"]) / 1e6
                events.append((at, entry.get("UNIT", ""), entry["MESSAGE"]))
        return events

    def timer_on_active(self, timer: str) -> float:
        """The timer's OnActiveSec in seconds, as systemd loaded it."""
        shown = self.systemctl("show", "-P", "TimersMonotonic", timer).stdout
        found = re.search(r"OnActiveUSec=(?:(\d+)min)? ?(?:(\d+)s)?", shown)
        if not found or not any(found.groups()):
            raise LabError(f"{timer} has no OnActiveSec: {shown!r}")
        return 60 * float(found[1] or 0) + float(found[2] or 0)

    def healthy(self) -> bool:
        """Headscale answers /health on 127.0.0.1:8080."""
        probe = ["curl", "-fsS", "--max-time", "2", "http://127.0.0.1:8080/health"]
        return self.box.run(probe, check=False).returncode == 0

    def systemctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.box.run(["systemctl", *args], check=check)

    def reload_caddy(self) -> None:
        self.systemctl("reload", "caddy")

    def noise_key_sha256(self) -> str:
        return hashlib.sha256(
            self.box.path("/var/lib/headscale/noise_private.key").read_bytes()
        ).hexdigest()

    def certificates(self) -> dict[str, Path]:
        """Caddy's certificates on the volume, by name."""
        storage = self.box.path("/var/lib/caddy/.local/share/caddy/certificates")
        return {path.parent.name: path for path in sorted(storage.glob("*/*/*.crt"))}

    @property
    def volume(self) -> Path:
        """The state volume's mount point, as this machine reaches it."""
        return self.box.path(f"/mnt/{self.state_volume.name}")

    def run_unit(self, unit: str) -> subprocess.CompletedProcess[str]:
        """Run a oneshot unit now and wait for it; its exit code and what that run wrote to
        the journal (journald may take a moment to store the last lines). `restart`: a unit
        that stays active after it ran (RemainAfterExit=, the egress unit) runs again too."""
        started = self.systemctl("restart", unit, check=False)
        invocation = self.systemctl("show", "-P", "InvocationID", unit).stdout.strip()
        status = self.systemctl("show", "-P", "ExecMainStatus", unit).stdout.strip()
        if not invocation:
            raise LabError(f"{unit} did not run: {started.stderr.strip()}")
        argv = ["journalctl", "-q", f"_SYSTEMD_INVOCATION_ID={invocation}", "-o", "cat"]
        try:
            output = wait_for(
                f"{unit}'s output in the journal",
                lambda: self.box.run([*argv, "--no-pager"], check=False).stdout,
                10,
                0.2,
            )
        except LabError:
            output = ""
        code = int(status or "0")
        if started.returncode != 0 and code == 0:
            code = 1
        return subprocess.CompletedProcess([unit], code, output, started.stderr)

    @contextlib.contextmanager
    def timer_held(self, timer: str = "homelab-tunnel-health.timer") -> Iterator[None]:
        """`timer` stopped for the block: a scenario that runs its service itself counts
        exactly its own runs (the timer would add one whenever it falls due)."""
        self.systemctl("stop", timer)
        try:
            yield
        finally:
            self.systemctl("start", timer)

    def wait_active(self, unit: str, timeout: float = 30) -> None:
        wait_for(
            f"{unit} active",
            lambda: self.systemctl("is-active", unit, check=False).stdout.strip() == "active",
            timeout,
            0.2,
        )

    def undo_egress(self) -> None:
        """Back to DigitalOcean's default routing (the product never needs this: egress
        off is a new droplet)."""
        box = self.box
        for priority in ("900", "901", "1000"):
            box.run(["ip", "rule", "del", "priority", priority], check=False)
        box.run(["ip", "route", "flush", "table", "100"], check=False)
        gateway = self.droplet.own_gateway
        box.run(["ip", "route", "replace", "default", "via", gateway, "dev", "eth0"])

    # -- around it -------------------------------------------------------------

    def start_webhook(self) -> Path:
        """The receiver health.env's webhook points at, in the droplet; its record file.
        A transient unit (systemd-run), so it stops with the droplet's other services at a
        reboot; started again by the next call, its record kept on the root disk."""
        box = self.box
        record = box.path(WEBHOOK_RECORD)
        if self.systemctl("is-active", WEBHOOK_UNIT, check=False).stdout.strip() == "active":
            return record
        record.touch()
        argv = ["python3", f"{PROBE_DIR}/box_services.py", "webhook", WEBHOOK_PORT, WEBHOOK_RECORD]
        box.run(["systemd-run", f"--unit={WEBHOOK_UNIT}", "--collect", "--quiet", *argv])
        probe = ["curl", "-sS", "-o", "/dev/null", f"http://127.0.0.1:{WEBHOOK_PORT}/"]
        wait_for("webhook receiver", lambda: box.run(probe, check=False).returncode == 0, 10, 0.05)
        return record

    def posts(self) -> list[dict[str, Any]]:
        record = self.box.path(WEBHOOK_RECORD)
        if not record.exists():
            raise LabError("no webhook receiver was started")
        return [json.loads(line) for line in record.read_text().splitlines()]

    def mark(self) -> str:
        """A place in the droplet's journal: `since(mark)` reads what came after it."""
        done = self.box.run(["journalctl", "-n", "0", "--show-cursor", "--no-pager"], check=False)
        return done.stdout.strip().rpartition("-- cursor: ")[2]

    def since(self, mark: str, unit: str | None = None) -> str:
        """This droplet's journal after `mark` (of `unit`, by the lab's names, if given).
        A mark of another droplet (before a replacement) reads the new one's whole journal."""
        argv = [
            "journalctl",
            "-o",
            "cat",
            "--no-pager",
            *(["-u", UNITS.get(unit, unit)] if unit else []),
        ]
        done = self.box.run([*argv, f"--after-cursor={mark}"], check=False)
        if done.returncode != 0 and "cursor" in done.stderr.lower():
            done = self.box.run(argv, check=False)
        return done.stdout


def step_lines(output: str) -> list[str]:
    """bootstrap's own lines ("homelab-tunnel: <step>: ...") in `output`, in order."""
    return re.findall(r"^homelab-tunnel: .*$", output, re.MULTILINE)
