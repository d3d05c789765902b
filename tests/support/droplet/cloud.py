"""DigitalOcean around droplet boxes: the internet, metadata service, cloud firewall, volumes.

    cloud = Cloud().up()
    volume = cloud.volume("homelab-edge-state")
    droplet = cloud.create_droplet(user_data_bytes, name="homelab-edge", volume=volume)
    droplet.outcome()            # the boot's "edge ready..." or "FAILED..." line
    cloud.destroy(droplet)       # a replacement: the next droplet, same volume
    cloud.down()                 # and cloud.leftovers() == []

The internet is the lab's (support.lab.network): a router that DNATs the
reserved IP to the droplet's anchor address and drops anything addressed
outside the documentation ranges. One droplet is attached at a time, on the
router's `edge0`, as the stack has one; each gets the next addresses of the
lab's plan and a network namespace of its own, where systemd-nspawn boots it.
Everything the run makes is recorded (support.lab.processes) and taken down
by `down()`, at exit, on SIGTERM, or by the next run if this one was killed.
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import sys
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from support.droplet.firewall import Firewall
from support.droplet.machine import Machine
from support.droplet.metadata import Facts, MetadataService
from support.droplet.rootfs import DropletUnavailable, rootfs
from support.droplet.seed import FSCK_UNIT, image_files, nocloud_seed, write_layer
from support.droplet.volume import Volume
from support.lab.addresses import RESERVED_IP, Host, droplet
from support.lab.addresses import Droplet as Addresses
from support.lab.boxes import RESOLV_CONF, Box
from support.lab.network import EDGE_LINK, Internet
from support.lab.processes import (
    RunState,
    down_at_exit,
    forget_at_exit,
    leftovers,
    reap_orphans,
    teardown,
)
from support.lab.requirements import LabUnavailable
from support.lab.requirements import check_machine as lab_machine
from support.lab.shell import LabError, run

COMMANDS = ("systemd-nspawn", "losetup", "ssh", "ssh-keygen")
OUTPUT = "/var/log/cloud-init-output.log"
# The boot's last word: bootstrap.sh ends with one of these (a test's user_data too).
OUTCOME = r"edge ready|FAILED"
# DigitalOcean's droplet ids are large integers; these stay clear of any real one's look.
FIRST_DROPLET_ID = 500_000_001


def check_machine() -> Path:
    """The rootfs, if this machine can boot droplet boxes; `DropletUnavailable` otherwise."""
    try:
        lab_machine()  # root, network and mount namespaces, the lab's commands
    except LabUnavailable as exc:
        raise DropletUnavailable(str(exc)) from exc
    missing = [command for command in COMMANDS if shutil.which(command) is None]
    if missing:
        raise DropletUnavailable(
            f"droplet boxes need {', '.join(missing)} (`make test` installs them)"
        )
    if "overlay" not in Path("/proc/filesystems").read_text():
        raise DropletUnavailable("the kernel has no overlayfs for the droplets' root layers")
    if not Path("/dev/net/tun").exists():
        raise DropletUnavailable("no /dev/net/tun to give the droplets")
    return rootfs()


@dataclass
class Droplet:
    """One droplet: what DigitalOcean knows of it, its namespace and its machine."""

    facts: Facts
    box: Box
    machine: Machine
    volume: Volume | None
    # Where this boot's lines start in cloud-init-output.log (it grows across boots).
    output_since: int = 0

    @property
    def instance_id(self) -> str:
        """cloud-init's instance-id: the droplet id, as DigitalOcean's datasource makes it."""
        return str(self.facts.droplet_id)

    @property
    def addresses(self) -> Addresses:
        return self.facts.addresses

    def outcome(self, timeout: float = 90) -> str:
        """This boot's "edge ready ..." or "FAILED ..." line in cloud-init-output.log."""
        return self.machine.wait_for_line(OUTPUT, OUTCOME, timeout, since=self.output_since)

    def cloud_init_status(self, timeout: float = 90) -> dict[str, Any]:
        """`cloud-init status --wait` of this boot, as JSON."""
        done = self.machine.run(
            ["cloud-init", "status", "--wait", "--format", "json"], check=False, timeout=timeout
        )
        return dict(json.loads(done.stdout))

    def reboot(self) -> None:
        self.output_since = self.machine.size(OUTPUT)
        self.machine.reboot()


class Cloud:
    """One run: the internet router, the metadata service on it, volumes and droplets."""

    def __init__(self, prefix: str | None = None, *, region: str = "fra1") -> None:
        self.lower = check_machine()
        self.state = RunState(prefix or f"do{secrets.token_hex(2)}")
        self.directory = self.state.directory
        self.region = region
        self.internet = Internet(self.state)
        self.metadata = MetadataService(self.internet.router, self.directory, EDGE_LINK)
        self.ssh_key = self.directory / "ssh" / "id_ed25519"
        self.clients: dict[str, Box] = {}
        self.droplets: list[Droplet] = []
        self.volumes: list[Volume] = []
        self.created = 0

    def up(self) -> Cloud:
        reap_orphans()
        down_at_exit(self.state.prefix, self.down)
        try:
            self.internet.create()
            self.metadata.start()
            self.ssh_key.parent.mkdir(parents=True, exist_ok=True)
            run(
                [
                    "ssh-keygen",
                    "-q",
                    "-t",
                    "ed25519",
                    "-N",
                    "",
                    "-C",
                    "operator",
                    "-f",
                    self.ssh_key,
                ]
            )
        except BaseException:
            self.down()
            raise
        return self

    @property
    def public_key(self) -> str:
        """The operator's key, which DigitalOcean puts on every droplet (the stack's ssh_keys)."""
        return self.ssh_key.with_suffix(".pub").read_text().strip()

    # -- around the droplets -------------------------------------------------

    def client(self, role: str, host: Host) -> Box:
        """A machine on the internet (a visitor, the operator): a network namespace only."""
        box = Box(self.state, role)
        box.create()
        self.internet.attach(box, host, f"{role[:8]}0")
        self.clients[role] = box
        return box

    def volume(self, name: str, size_gb: int = 1) -> Volume:
        """A blank volume, kept for the whole run whatever droplet it is attached to."""
        volume = Volume(name, self.directory / "volumes", size_gb)
        self.volumes.append(volume)
        volume.create()
        return volume

    def apply_firewall(self, firewall: Firewall) -> None:
        self.internet.apply_firewall(firewall)

    def remove_firewall(self) -> None:
        self.internet.remove_firewall()

    def firewall_drops(self, direction: str) -> int:
        """Packets the firewall dropped so far, "inbound" or "outbound"."""
        return self.internet.firewall_drops(direction)

    def ssh(
        self, box: Box, address: str, command: str, *, known_hosts: Path, timeout: float = 30
    ) -> subprocess.CompletedProcess[str]:
        """`ssh root@address command` from `box` with the operator's key, BatchMode (no
        prompt ever), trusting a host key on first use and holding it to it after."""
        argv = [
            *("ssh", "-F", "/dev/null", "-i", self.ssh_key, "-o", "BatchMode=yes"),
            *("-o", "ConnectTimeout=5", "-o", f"UserKnownHostsFile={known_hosts}"),
            *("-o", "StrictHostKeyChecking=accept-new", f"root@{address}", command),
        ]
        return box.run(argv, check=False, timeout=timeout)

    # -- droplets ------------------------------------------------------------

    def create_droplet(
        self,
        user_data: bytes,
        *,
        name: str = "droplet-box",
        volume: Volume | None = None,
        reserved_ip_after: float | None = 0.0,
        public_keys: Sequence[str] | None = None,
        files: Mapping[str, bytes] | None = None,
    ) -> Droplet:
        """Boot the next droplet with `user_data` (bytes, seeded as they are) and `volume`
        attached; the reserved IP points at it and its metadata turns it active after
        `reserved_ip_after` seconds (None: never). `files`: more for its upper layer."""
        if self.droplets:
            raise LabError("one droplet at a time: destroy the current one first")
        self.created += 1
        number = self.created
        box = Box(self.state, f"droplet{number}")
        box.create()
        self.internet.attach_droplet(box, droplet(number))
        facts = Facts(
            droplet_id=FIRST_DROPLET_ID + number - 1,
            hostname=name,
            region=self.region,
            addresses=droplet(number),
            mac=json.loads(box.ip("-j", "link", "show", "eth0"))[0]["address"],
            user_data=user_data,
            public_keys=tuple(public_keys if public_keys is not None else [self.public_key]),
        )
        self.metadata.register(facts, RESERVED_IP, reserved_ip_after)
        binds = [(volume.device, volume.by_id)] if volume and volume.device else []
        machine = Machine(
            self.state,
            lower=self.lower,
            directory=self.directory / "droplets" / str(number),
            netns=box.netns,
            name=f"{self.state.prefix}-droplet{number}",
            machine_id=uuid.uuid4().hex,
            binds=binds,
        )
        layer = {
            **image_files((self.lower / FSCK_UNIT.lstrip("/")).read_text()),
            **nocloud_seed(
                instance_id=str(facts.droplet_id),
                hostname=name,
                user_data=user_data,
                public_keys=facts.public_keys,
            ),
            "/etc/resolv.conf": RESOLV_CONF.encode(),
            **(files or {}),
        }
        write_layer(machine.upper, self.lower, layer)
        created = Droplet(facts, box, machine, volume)
        self.droplets.append(created)
        machine.boot()
        return created

    def destroy(self, droplet: Droplet) -> None:
        """Gone, as `terraform destroy` leaves it: powered off, unreachable, its metadata
        forgotten; its volume stays, detached, for the next droplet."""
        droplet.machine.kill()
        self.metadata.forget(droplet.facts.droplet_id)
        self.internet.detach(EDGE_LINK)
        droplet.box.destroy()
        self.droplets.remove(droplet)

    # -- teardown ------------------------------------------------------------

    def down(self) -> None:
        """Power every droplet off, detach the volumes, remove all the run made but its logs."""
        for current in self.droplets:
            current.machine.kill()
        for volume in self.volumes:
            volume.detach()
        teardown(self.state.prefix)
        forget_at_exit(self.state.prefix)

    def leftovers(self) -> list[str]:
        """What is still on the machine of this run (after `down`, nothing)."""
        return leftovers(self.state.prefix)


def connect(box: Box, address: str, port: int, timeout: float = 2) -> str:
    """A TCP connection from `box`: "open", "refused" (a reset: nothing listens, no firewall
    in the way) or "timeout" (dropped on the way, as DigitalOcean's firewall does)."""
    probe = (
        "import socket, sys\n"
        "try:\n"
        f"    socket.create_connection(({address!r}, {port}), timeout={timeout})\n"
        "    print('open')\n"
        "except ConnectionRefusedError:\n"
        "    print('refused')\n"
        "except TimeoutError:\n"
        "    print('timeout')\n"
    )
    return box.run([sys.executable, "-c", probe], timeout=timeout + 10).stdout.strip()
