"""The droplet box: a booted Debian machine that gets user_data as a droplet does, with
DigitalOcean around it (tests/support/droplet/).

One run of the cloud for the module; four boots in all, in order: a first
droplet (its checks grouped on that boot), the same droplet rebooted, a
replacement on the same volume, and one without its volume. The user_data is
this module's own #cloud-config, using every kind of step bootstrap's does:
bootcmd, write_files (encoded and plain), a unit started from runcmd, and
bootstrap's first step in miniature (format a blank volume once, mount it
through fstab). The firewall is generated from the example config,
synthesized, with the operator's address in ssh_allowed_cidrs.
"""

from __future__ import annotations

import base64
import json
import re
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.config import EXAMPLE, config_with
from support.droplet.cloud import Cloud, Droplet, connect
from support.droplet.firewall import from_stack
from support.droplet.metadata import ADDRESS
from support.droplet.rootfs import DropletUnavailable
from support.droplet.volume import Volume
from support.lab.addresses import OPERATOR, RESERVED_IP, VISITOR
from support.lab.boxes import Box
from support.lab.processes import teardown
from support.lab.shell import run, wait_for

NAME = "homelab-edge"
VOLUME = "homelab-edge-state"
STATE = "/mnt/state"
BOOTCMD_LOG = "/var/lib/box-test/bootcmd.log"
# Bytes no YAML or text round trip would keep: CRLF, trailing blanks, NUL, invalid UTF-8.
PAYLOAD = b"line one\r\nline two  \n\x00\xff\xfe end without newline"
VOLUME_STEP = f"""#!/bin/sh
# bootstrap.sh's step 1 in miniature: format a blank volume once, mount it through fstab.
set -eu
device=/dev/disk/by-id/scsi-0DO_Volume_$1
if [ ! -b "$device" ]; then echo "FAILED: state volume $1 is not attached"; exit 1; fi
if [ -z "$(blkid -o value -s TYPE "$device" || true)" ]; then
  mkfs.ext4 -q -L box-state "$device"
  echo "formatted $device"
fi
mkdir -p {STATE}
grep -q " {STATE} " /etc/fstab ||
  echo "$device {STATE} ext4 defaults,nofail,discard,noatime 0 2" >>/etc/fstab
mountpoint -q {STATE} || mount {STATE}
[ -e {STATE}/first-instance ] || cat /var/lib/cloud/data/instance-id >{STATE}/first-instance
echo "edge ready: volume $1 at {STATE}, formatted by instance $(cat {STATE}/first-instance)"
"""
PROBE_UNIT = """[Unit]
Description=an HTTP listener for the firewall checks
[Service]
ExecStart=/usr/bin/python3 -u -m http.server 80
[Install]
WantedBy=multi-user.target
"""
USER_DATA = f"""#cloud-config
# The droplet box's own test (tests/lab/test_droplet_box.py): café ✓, kept as bytes.
bootcmd:
  - [mkdir, -p, /var/lib/box-test]
  - [sh, -c, 'echo "$(cat /proc/sys/kernel/random/boot_id) $INSTANCE_ID" >>{BOOTCMD_LOG}']
write_files:
  - path: /etc/box-test/payload
    encoding: b64
    content: {base64.b64encode(PAYLOAD).decode()}
    permissions: "0640"
  - path: /usr/local/sbin/box-volume
    permissions: "0755"
    content: {json.dumps(VOLUME_STEP)}
  - path: /etc/systemd/system/box-probe.service
    content: {json.dumps(PROBE_UNIT)}
runcmd:
  - [systemctl, daemon-reload]
  - [systemctl, enable, --now, box-probe.service]
  - [/usr/local/sbin/box-volume, {VOLUME}]
""".encode()
STAGES = ("init-local", "init", "modules:config", "modules:final")


# -- the cloud and its droplets -------------------------------------------------


@pytest.fixture(scope="module")
def firewall_stack(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The example config, synthesized, letting only the operator's address reach SSH."""
    from homelab_tunnel.infra.synth import synthesize

    config = config_with(ssh_allowed_cidrs=[f"{OPERATOR.address}/32"])
    path = synthesize(config, tmp_path_factory.mktemp("synth") / "cdktf.out", config_path=EXAMPLE)
    return dict(json.loads(path.read_text()))


@pytest.fixture(scope="module")
def cloud(request: pytest.FixtureRequest) -> Iterator[Cloud]:
    try:
        cloud = Cloud()
    except DropletUnavailable as exc:
        pytest.skip(f"droplet box: {exc}")
    firewall_stack = request.getfixturevalue("firewall_stack")  # no synthesis for a skip
    cloud.up()
    leaked = None
    try:
        cloud.client("visitor", VISITOR)
        cloud.client("operator", OPERATOR)
        cloud.apply_firewall(from_stack(firewall_stack))
        cloud.volume(VOLUME)
        yield cloud
        leaked = cloud.internet.leaked_packets()
    finally:
        cloud.down()
    assert cloud.leftovers() == [], "the run left these behind"
    assert leaked == 0, f"{leaked} packet(s) tried to leave the lab's addresses"


@pytest.fixture(scope="module")
def visitor(cloud: Cloud) -> Box:
    return cloud.clients["visitor"]


@pytest.fixture(scope="module")
def operator(cloud: Cloud) -> Box:
    return cloud.clients["operator"]


@pytest.fixture(scope="module")
def known_hosts(cloud: Cloud) -> Path:
    """The operator's known_hosts, which remembers the first droplet's host key."""
    return cloud.directory / "operator-known_hosts"


@pytest.fixture(scope="module")
def first(cloud: Cloud) -> Droplet:
    droplet = cloud.create_droplet(USER_DATA, name=NAME, volume=cloud.volumes[0])
    droplet.outcome()
    droplet.cloud_init_status()
    return droplet


def _cloud_init_log(droplet: Droplet) -> str:
    return droplet.machine.read("/var/log/cloud-init.log").decode(errors="replace")


def _curl(droplet: Droplet, path: str) -> bytes:
    done = droplet.machine.run(["curl", "-fsS", f"http://{ADDRESS}{path}"], check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.encode()


# -- the first boot ------------------------------------------------------------


def test_cloud_init_ran_each_stage_once_from_the_nocloud_seed(first: Droplet) -> None:
    status = first.cloud_init_status()
    assert (status["status"], status["datasource"], status["errors"]) == ("done", "nocloud", [])
    log = _cloud_init_log(first)
    for stage in STAGES:
        assert len(re.findall(rf"running '{re.escape(stage)}'", log)) == 1, stage
        assert status[stage.replace("modules:", "modules-")]["finished"], stage


def test_user_data_reached_cloud_init_byte_for_byte(first: Droplet) -> None:
    assert first.machine.read("/var/lib/cloud/instance/user-data.txt") == USER_DATA


def test_write_files_wrote_every_byte(first: Droplet) -> None:
    assert first.machine.read("/etc/box-test/payload") == PAYLOAD
    mode = first.machine.path("/etc/box-test/payload").stat().st_mode
    assert stat.S_IMODE(mode) == 0o640


def test_each_droplet_gets_the_identity_digitalocean_gives_it(first: Droplet) -> None:
    machine = first.machine
    assert machine.read("/etc/machine-id").decode().strip() == machine.machine_id
    assert machine.read("/var/lib/cloud/data/instance-id").decode().strip() == first.instance_id
    assert machine.run(["hostname"]).stdout.strip() == NAME
    assert (machine.lower / "etc/machine-id").read_bytes() == b"", "the image has no machine-id"


def test_runcmd_formatted_the_volume_and_mounted_it_through_fstab(first: Droplet) -> None:
    volume = first.volume
    assert volume is not None
    assert stat.S_ISBLK(first.machine.path(volume.by_id).stat().st_mode)
    mounted = first.machine.run(["findmnt", "-n", "-o", "SOURCE,FSTYPE", STATE]).stdout.split()
    assert mounted == [volume.by_id, "ext4"]
    assert f"{volume.by_id} {STATE} ext4" in first.machine.read("/etc/fstab").decode()
    assert first.outcome() == (
        f"edge ready: volume {VOLUME} at {STATE}, formatted by instance {first.instance_id}"
    )


def test_a_unit_written_by_write_files_runs_under_the_droplets_systemd(first: Droplet) -> None:
    state = first.machine.run(["systemctl", "is-active", "box-probe.service"], check=False)
    assert state.stdout.strip() == "active"
    first.machine.wait_for_journal("Serving HTTP on", 10, unit="box-probe.service")


def test_the_metadata_service_answers_the_droplet_as_digitalocean_does(first: Droplet) -> None:
    addresses = first.addresses
    assert _curl(first, "/metadata/v1/id").decode() == first.instance_id
    assert _curl(first, "/metadata/v1/hostname").decode() == NAME
    assert _curl(first, "/metadata/v1/user-data") == USER_DATA
    public = "/metadata/v1/interfaces/public/0"
    assert _curl(first, f"{public}/ipv4/address").decode() == addresses.own
    assert _curl(first, f"{public}/anchor_ipv4/address").decode() == addresses.anchor
    anchor_gateway = _curl(first, f"{public}/anchor_ipv4/gateway").decode()
    assert anchor_gateway == addresses.anchor_gateway != addresses.own_gateway
    whole = json.loads(_curl(first, "/metadata/v1.json"))
    assert whole["droplet_id"] == first.facts.droplet_id
    assert whole["interfaces"]["public"][0]["ipv4"]["ip_address"] == addresses.own
    missing = first.machine.run(
        ["curl", "-fsS", f"http://{ADDRESS}/metadata/v1/nothing"], check=False
    )
    assert missing.returncode == 22, "an unknown path is a 404"


def test_the_reserved_ip_turns_active_after_a_delay_and_can_be_switched_off(
    cloud: Cloud, first: Droplet
) -> None:
    active = "/metadata/v1/reserved_ip/ipv4/active"
    droplet_id = first.facts.droplet_id
    cloud.metadata.assign_reserved_ip(droplet_id, None)
    assert _curl(first, active) == b"false"
    cloud.metadata.assign_reserved_ip(droplet_id, 3)
    assert _curl(first, active) == b"false"
    wait_for("the reserved IP active", lambda: _curl(first, active) == b"true", 15, 0.2)
    assert _curl(first, "/metadata/v1/reserved_ip/ipv4/ip_address").decode() == RESERVED_IP


def test_no_other_machine_reaches_the_metadata_service(first: Droplet, visitor: Box) -> None:
    assert connect(visitor, ADDRESS, 80) == "timeout"


def test_negative_twin_without_the_guard_the_visitor_would_connect(
    cloud: Cloud, first: Droplet, visitor: Box
) -> None:
    cloud.metadata.guard(False)
    try:
        assert connect(visitor, ADDRESS, 80) == "open"
    finally:
        cloud.metadata.guard(True)


def test_the_droplet_can_make_a_tun_device_and_load_nftables(first: Droplet) -> None:
    """What tailscaled and the edge's firewall rules need of the kernel, from inside."""
    first.machine.sh(
        "ip tuntap add mode tun dev probe-tun && ip tuntap del mode tun dev probe-tun\n"
        "nft 'add table inet probe; delete table inet probe'"
    )


def test_ssh_reaches_root_with_the_droplets_key(
    cloud: Cloud, first: Droplet, operator: Box, known_hosts: Path
) -> None:
    done = cloud.ssh(operator, RESERVED_IP, "id -un", known_hosts=known_hosts)
    assert (done.returncode, done.stdout.strip()) == (0, "root"), done.stderr
    # The key ssh met is the one cloud-init made for this instance and printed on its console.
    seen = known_hosts.read_text().split()[1:3]
    printed = re.findall(r"^(ssh-ed25519 \S+)", first.machine.console(), re.MULTILINE)
    assert " ".join(seen) in printed


def test_ssh_with_a_key_the_droplet_was_not_given_is_refused(
    cloud: Cloud, first: Droplet, operator: Box, tmp_path: Path
) -> None:
    stranger = tmp_path / "stranger"
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", stranger])
    argv = [
        *("ssh", "-F", "/dev/null", "-i", stranger, "-o", "BatchMode=yes"),
        *("-o", "StrictHostKeyChecking=no", "-o", f"UserKnownHostsFile={tmp_path}/kh"),
        *(f"root@{RESERVED_IP}", "true"),
    ]
    done = operator.run(argv, check=False)
    assert done.returncode == 255
    assert "Permission denied (publickey" in done.stderr


def test_the_firewall_drops_what_the_synthesized_stack_does_not_allow(
    cloud: Cloud, first: Droplet, visitor: Box, operator: Box
) -> None:
    own = first.addresses.own
    before = cloud.firewall_drops("inbound")
    assert connect(visitor, RESERVED_IP, 80) == "open"
    assert connect(visitor, own, 80) == "open"
    assert connect(visitor, own, 22) == "timeout", "SSH is only for the operator's address"
    assert connect(operator, own, 22) == "open"
    assert connect(visitor, own, 8080) == "timeout", "no rule: dropped, not refused"
    assert cloud.firewall_drops("inbound") > before


def test_negative_twin_without_the_firewall_the_same_ports_answer(
    cloud: Cloud, first: Droplet, visitor: Box, firewall_stack: dict[str, Any]
) -> None:
    own = first.addresses.own
    cloud.remove_firewall()
    try:
        assert connect(visitor, own, 22) == "open"
        assert connect(visitor, own, 8080) == "refused"
    finally:
        cloud.apply_firewall(from_stack(firewall_stack))


def test_the_firewall_lets_the_droplet_reach_out(
    cloud: Cloud, first: Droplet, visitor: Box
) -> None:
    server = visitor.spawn("http", [sys.executable, "-m", "http.server", "8000"])
    try:
        url = f"http://{VISITOR.address}:8000/"
        wait_for(
            "the visitor's listener", lambda: connect(visitor, VISITOR.address, 8000) == "open", 10
        )
        done = first.machine.run(["curl", "-fsS", "-o", "/dev/null", "-w", "%{http_code}", url])
        assert done.stdout == "200"
    finally:
        server.stop()
    assert cloud.firewall_drops("outbound") == 0


# -- a reboot ------------------------------------------------------------------


@pytest.fixture(scope="module")
def rebooted(first: Droplet) -> Droplet:
    first.reboot()
    first.cloud_init_status()
    return first


def test_a_reboot_runs_bootcmd_again_and_nothing_once_per_instance(rebooted: Droplet) -> None:
    lines = rebooted.machine.read(BOOTCMD_LOG).decode().splitlines()
    boots = [line.split() for line in lines]
    assert len(boots) == 2 and boots[0][0] != boots[1][0], "two boots, two boot ids"
    assert {instance for _boot, instance in boots} == {rebooted.instance_id}
    log = _cloud_init_log(rebooted)
    first_boot, second_boot = log.split("running 'init-local'")[1:]
    once = set(re.findall(r"Running module (\S+) .* with frequency once-per-instance", first_boot))
    assert "runcmd" in once and "write-files" in once
    for module in once:
        assert f"config-{module} already ran" in second_boot, module
    output = rebooted.machine.read("/var/log/cloud-init-output.log").decode()
    assert output.count("formatted /dev/disk") == 1


def test_a_reboot_mounts_the_volume_from_fstab_with_the_same_identity(
    cloud: Cloud, rebooted: Droplet, operator: Box, known_hosts: Path
) -> None:
    """No runcmd ran this boot: systemd checked and mounted the volume from fstab."""
    unit = rebooted.machine.run(["systemctl", "is-active", "mnt-state.mount"], check=False)
    assert unit.stdout.strip() == "active"
    marker = rebooted.machine.read(f"{STATE}/first-instance").decode().strip()
    assert marker == rebooted.instance_id
    machine_id = rebooted.machine.read("/etc/machine-id").decode().strip()
    assert machine_id == rebooted.machine.machine_id
    done = cloud.ssh(operator, RESERVED_IP, "true", known_hosts=known_hosts)
    assert done.returncode == 0, "the same host key: " + done.stderr


# -- a replacement -------------------------------------------------------------


@pytest.fixture(scope="module")
def replacement(cloud: Cloud, rebooted: Droplet) -> Droplet:
    volume = rebooted.volume
    cloud.destroy(rebooted)
    droplet = cloud.create_droplet(USER_DATA, name=NAME, volume=volume)
    droplet.outcome()
    droplet.cloud_init_status()
    return droplet


def test_a_replacement_finds_the_volume_the_first_droplet_formatted(
    rebooted: Droplet, replacement: Droplet
) -> None:
    assert replacement.outcome() == (
        f"edge ready: volume {VOLUME} at {STATE}, formatted by instance {rebooted.instance_id}"
    )
    output = replacement.machine.read("/var/log/cloud-init-output.log").decode()
    assert "formatted /dev/disk" not in output


def test_a_replacement_is_a_new_machine_and_instance(
    rebooted: Droplet, replacement: Droplet
) -> None:
    assert replacement.instance_id != rebooted.instance_id
    assert replacement.machine.machine_id != rebooted.machine.machine_id
    assert replacement.machine.read("/etc/machine-id").decode().strip() == (
        replacement.machine.machine_id
    )
    keys = [
        droplet.machine.read("/etc/ssh/ssh_host_ed25519_key.pub").split()[1]
        for droplet in (rebooted, replacement)
    ]
    assert keys[0] != keys[1]


def test_the_operator_meets_the_replacements_new_host_key(
    cloud: Cloud, replacement: Droplet, operator: Box, known_hosts: Path
) -> None:
    """The reserved IP moved to a droplet whose host key ssh has not seen: it refuses."""
    done = cloud.ssh(operator, RESERVED_IP, "true", known_hosts=known_hosts)
    assert done.returncode == 255
    assert "REMOTE HOST IDENTIFICATION HAS CHANGED" in done.stderr


# -- without a volume ----------------------------------------------------------


@pytest.fixture(scope="module")
def bare(cloud: Cloud, replacement: Droplet) -> Droplet:
    cloud.destroy(replacement)
    return cloud.create_droplet(USER_DATA, name=NAME)


def test_a_droplet_without_its_volume_ends_with_a_failed_line(bare: Droplet) -> None:
    assert bare.outcome() == f"FAILED: state volume {VOLUME} is not attached"
    assert not bare.machine.path("/dev/disk/by-id").exists()
    assert bare.cloud_init_status()["status"] == "error"


def test_a_droplet_powers_off_cleanly(bare: Droplet) -> None:
    bare.machine.poweroff()  # raises unless nspawn saw the container's systemd power off
    assert not bare.machine.running()
    assert "Powering off." in bare.machine.console().rsplit("--- boot", 1)[1]


# -- teardown ------------------------------------------------------------------


def test_a_killed_runs_droplet_and_volume_are_taken_down_by_the_next_run(
    tmp_path: Path,
) -> None:
    """What the next run does for a run whose process was killed (reap_orphans): from the
    state file alone, no container, namespace, mount or loop device stays."""
    try:
        other = Cloud().up()
    except DropletUnavailable as exc:
        pytest.skip(f"droplet box: {exc}")
    try:
        volume: Volume = other.volume("orphan")
        droplet = other.create_droplet(b"#cloud-config\n", volume=volume)
        assert droplet.machine.running()
        assert other.leftovers(), "a running droplet is something to take down"
        teardown(other.state.prefix)
        assert other.leftovers() == []
        assert not droplet.machine.running()
    finally:
        other.down()
