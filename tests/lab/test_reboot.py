"""Scenario: the droplet reboots (a resize does this too); everything comes back from fstab.

No cloud-init module runs again (they run once per instance); systemd mounts
the volume and its bind mounts from the lines bootstrap wrote to fstab, the
enabled units start, and the bootstrap unit runs again at boot and finds
nothing to do: no key minted, no node registered, the same noise key, the
sites and the direct path back.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from support.lab.bootstrap import BootstrapRun
from support.lab.deploy import volume_directories
from support.lab.lab import Lab
from support.lab.scenario import TailnetSnapshot, homelab_back, tailnet_snapshot

UNITS = ("headscale", "caddy", "tailscaled", "ssh", "homelab-tunnel-config")


@dataclass
class Observed:
    before: TailnetSnapshot
    after: TailnetSnapshot
    boot_ids: list[str]
    bootstrap: BootstrapRun
    mounts: dict[str, str]  # target -> source, as findmnt lists them
    active: dict[str, str]
    first_page: str
    home_ping: str


@pytest.fixture(scope="module")
def observed(lab: Lab) -> Observed:
    homelab_back(lab)
    before = tailnet_snapshot(lab)
    bootstrap = lab.edge.reboot()
    first_page = lab.page_once_up("blog.lab.example")
    home_ping = homelab_back(lab)
    volume = f"/mnt/{lab.config.volume_name}"
    targets = {volume, *volume_directories()}
    listed = lab.edge.box.run(["findmnt", "-l", "-n", "-o", "TARGET,SOURCE"]).stdout
    mounts = {
        target: source
        for target, source in (line.split(None, 1) for line in listed.splitlines())
        if target in targets
    }
    boots = lab.edge.box.run(["journalctl", "--list-boots", "-q", "--no-pager"]).stdout
    return Observed(
        before=before,
        after=tailnet_snapshot(lab),
        boot_ids=[line.split()[1] for line in boots.splitlines()],
        bootstrap=bootstrap,
        mounts=mounts,
        active={
            unit: lab.edge.systemctl("is-active", unit, check=False).stdout.strip()
            for unit in UNITS
        },
        first_page=first_page,
        home_ping=home_ping,
    )


def test_it_booted_twice_as_the_same_droplet(observed: Observed, lab: Lab) -> None:
    assert len(set(observed.boot_ids)) == 2
    assert observed.after.host_key == observed.before.host_key


def test_fstab_brings_the_volume_and_its_bind_mounts_back(observed: Observed, lab: Lab) -> None:
    volume = f"/mnt/{lab.config.volume_name}"
    device = observed.mounts[volume]
    assert device == f"/dev/disk/by-id/scsi-0DO_Volume_{lab.config.volume_name}"
    for system, folder in volume_directories().items():
        assert observed.mounts[system] == f"{device}[/{folder}]", system


def test_every_service_is_back(observed: Observed) -> None:
    assert observed.active == dict.fromkeys(UNITS, "active")
    assert observed.first_page.startswith("blog app on homelab")


def test_bootstrap_ran_at_boot_and_changed_nothing(observed: Observed) -> None:
    assert observed.bootstrap.returncode == 0, observed.bootstrap.output[-2000:]
    assert observed.bootstrap.step("ssh-host-keys").endswith("kept on the volume")
    assert observed.bootstrap.step("upgrade-guard").startswith("upgrade guard: Headscale 0.29.2")
    assert "formatting" not in observed.bootstrap.output
    assert (
        "apt-get" not in observed.bootstrap.output and "Unpacking" not in observed.bootstrap.output
    )


def test_nothing_was_minted_or_registered_again(observed: Observed) -> None:
    assert observed.after.same_tailnet(observed.before)
    assert observed.after.noise_key == observed.before.noise_key
    assert observed.after.home_key == observed.before.home_key
    assert observed.after.edge_nodes == [observed.before.edge_nodes[0]]


def test_the_homelab_is_back_on_a_direct_path(observed: Observed, lab: Lab) -> None:
    own = lab.edge.droplet.own
    assert f"pong from {lab.config.name} (100.64.0.1) via {own}:41641" in observed.home_ping
