"""Scenarios: first boots that go wrong, and what the edge does about them.

A droplet whose volume is not attached boots all the same (fstab's lines are
`nofail`: no emergency mode), sshd answers, bootstrap stops at the volume
step and the health agent says so; the operator's tool refuses the new
droplet's host key (it could not come from the volume) and says what to do.
Then a droplet on the volume boots while the package mirror is down:
bootstrap fails at the packages step, the health agent names that step,
systemd starts it again after its backoff, and once the mirror is back the
edge becomes ready by itself. The lab ends with a healthy edge, its homelab
back.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass

import pytest
from support.lab.bootstrap import BootstrapRun
from support.lab.lab import Lab
from support.lab.scenario import homelab_back
from support.lab.shell import wait_for

from homelab_tunnel.render.user_data import BOOTSTRAP_UNIT
from homelab_tunnel.tailnet.ssh import host_keys

HEALTH = "homelab-tunnel-health.service"


@dataclass
class NoVolume:
    bootstrap: BootstrapRun
    system_state: str
    emergency: str
    tool_ssh: subprocess.CompletedProcess[str]
    scanned: subprocess.CompletedProcess[str]
    health: subprocess.CompletedProcess[str]


@dataclass
class MirrorDown:
    failed: BootstrapRun
    health: subprocess.CompletedProcess[str]
    ready: BootstrapRun
    mirror_requests_while_down: int
    first_page: str
    home_ping: str


@pytest.fixture(scope="module")
def no_volume(lab: Lab) -> NoVolume:
    # The tool has met this edge: its known_hosts holds the key kept on the volume.
    lab.ssh("true")
    assert [key.split()[0] for key in host_keys(lab.known_hosts)] == ["ssh-ed25519"]
    lab.edge.destroy()
    lab.edge.create(volume=False)
    failed = lab.edge.wait_ready(check=False, timeout=150)
    state = lab.edge.box.run(["systemctl", "is-system-running"], check=False).stdout.strip()
    emergency = lab.edge.box.run(
        ["systemctl", "is-active", "emergency.target", "rescue.target"], check=False
    ).stdout.split()
    scan = ["ssh-keyscan", "-T", "5", "-t", "ed25519", lab.reserved_ip]
    return NoVolume(
        bootstrap=failed,
        system_state=state,
        emergency=" ".join(emergency),
        tool_ssh=lab.cli(
            "backups",
            "status",
            "--ssh",
            f"root@{lab.reserved_ip}",
            "--config",
            str(lab.config_path),
            check=False,
        ),
        scanned=lab.home.box.run(scan, check=False),
        health=lab.edge.run_unit(HEALTH),
    )


@pytest.fixture(scope="module")
def mirror_down(lab: Lab, no_volume: NoVolume) -> MirrorDown:
    lab.edge.destroy()
    lab.mirror.stop()
    before = len(lab.mirror.requests())
    try:
        lab.edge.create()
        failed = lab.edge.wait_ready(check=False, timeout=120)
        health = lab.edge.run_unit(HEALTH)
        during = len(lab.mirror.requests()) - before
    finally:
        lab.mirror.start()
    ready = lab.edge.wait_ready(timeout=180)
    return MirrorDown(
        failed=failed,
        health=health,
        ready=ready,
        mirror_requests_while_down=during,
        first_page=lab.page_once_up("blog.lab.example"),
        home_ping=homelab_back(lab),
    )


# -- the volume is not attached ---------------------------------------------------------------


def test_without_its_volume_the_droplet_boots_and_bootstrap_stops_at_the_volume(
    no_volume: NoVolume, lab: Lab
) -> None:
    assert no_volume.bootstrap.failure() == (
        f"state volume {lab.config.volume_name} is not attached "
        f"(/dev/disk/by-id/scsi-0DO_Volume_{lab.config.volume_name} missing); "
        "refusing to run without persistent state"
    )
    assert no_volume.bootstrap.step("health-timer"), "the health timer is on before it"
    assert not no_volume.bootstrap.step("packages")


def test_without_its_volume_there_is_no_emergency_mode(no_volume: NoVolume) -> None:
    assert no_volume.emergency == "inactive inactive"
    assert no_volume.system_state in ("degraded", "running", "starting"), no_volume.system_state


def test_without_its_volume_sshd_answers(no_volume: NoVolume, lab: Lab) -> None:
    assert no_volume.scanned.returncode == 0, no_volume.scanned.stderr
    assert f"{lab.reserved_ip} ssh-ed25519 " in no_volume.scanned.stdout


def test_the_tool_refuses_a_host_key_that_is_not_the_kept_one(
    no_volume: NoVolume, lab: Lab
) -> None:
    """This droplet's keys are its own (the kept ones are on the missing volume): the tool
    will not talk to it, and says how to go on once the console's fingerprint is checked."""
    assert no_volume.tool_ssh.returncode == 1
    said = no_volume.tool_ssh.stdout + no_volume.tool_ssh.stderr
    assert f"the edge's host key is not the one kept in {lab.known_hosts}" in said
    assert f"ssh-keygen -R {lab.reserved_ip} -f {lab.known_hosts}" in said


def test_the_health_agent_reports_the_missing_volume(no_volume: NoVolume, lab: Lab) -> None:
    assert no_volume.health.returncode == 1, no_volume.health.stdout
    assert (
        f"bootstrap: failed at step state-volume: state volume {lab.config.volume_name} "
        "is not attached"
    ) in no_volume.health.stdout


# -- the package mirror is down ---------------------------------------------------------------


def test_with_the_mirror_down_bootstrap_fails_at_the_packages_step(mirror_down: MirrorDown) -> None:
    assert mirror_down.failed.failure().startswith("cannot download the signing key https://")
    assert mirror_down.failed.step("ssh-host-keys"), "the steps before it ran"
    assert not mirror_down.failed.step("packages")
    assert mirror_down.mirror_requests_while_down == 0, "nothing answered"


def test_the_health_agent_names_the_failed_step(mirror_down: MirrorDown) -> None:
    assert "bootstrap: failed at step packages: cannot download" in mirror_down.health.stdout


def test_bootstrap_retries_after_its_backoff_and_the_edge_becomes_ready(
    mirror_down: MirrorDown,
) -> None:
    lines = [line for _, line in mirror_down.ready.lines]
    assert "homelab-tunnel: attempt 2 after a failure: waiting 30s first" in lines
    assert mirror_down.ready.returncode == 0
    assert mirror_down.ready.step("packages").startswith("tailscale 1.102.3 and caddy")
    assert any(line.startswith("homelab-tunnel: edge ready: ") for line in lines)


def test_once_ready_the_sites_and_the_homelab_are_back(mirror_down: MirrorDown, lab: Lab) -> None:
    assert mirror_down.first_page.startswith("blog app on homelab")
    own = lab.edge.droplet.own
    assert f"pong from {lab.config.name} (100.64.0.1) via {own}:41641" in mirror_down.home_ping


def test_the_bootstrap_unit_is_done_and_not_failed(mirror_down: MirrorDown, lab: Lab) -> None:
    result = lab.edge.systemctl("show", "-P", "Result", BOOTSTRAP_UNIT).stdout.strip()
    assert result == "success"
    wait_for(
        "the health agent's all clear",
        lambda: lab.edge.run_unit(HEALTH).returncode == 0,
        30,
        2,
    )
