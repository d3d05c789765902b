"""Scenario: the first boot of the droplet, read from its journal, and its metadata guard.

The order a real boot makes: no package starts its service on the package's
example config (bootstrap installs with policy-rc.d saying no), Headscale
starts only once its config is in place, Caddy only on our Caddyfile,
tailscaled only once tls.ca_roots is in the system's trust store, and then
trusts the edge's own DERP, whose certificate that private CA signed. And the
metadata service, which serves user_data with its secrets, answers root but
no other process on the droplet. Read-only, but for the twins, which put back
what they change.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass

import pytest
from support.droplet.metadata import ADDRESS
from support.lab.lab import Lab
from support.lab.shell import wait_for

from homelab_tunnel.render.user_data import METADATA_GUARD

USER_DATA = f"http://{ADDRESS}/metadata/v1/user-data"


@dataclass
class Entry:
    at: float
    unit: str
    message: str


def _journal(lab: Lab, *units: str) -> list[Entry]:
    """Every boot of this droplet, in order: the units' own lines and systemd's about them."""
    argv = ["journalctl", "-o", "json", "--no-pager", *(f"--unit={unit}" for unit in units)]
    entries = []
    for line in lab.edge.box.run(argv).stdout.splitlines():
        entry = json.loads(line)
        message = entry.get("MESSAGE")
        if isinstance(message, str):
            unit = entry.get("UNIT") or entry.get("_SYSTEMD_UNIT", "")
            entries.append(Entry(int(entry["__REALTIME_TIMESTAMP"]) / 1e6, unit, message))
    return entries


def _first(entries: list[Entry], unit: str, starts: str) -> float:
    return next(e.at for e in entries if e.unit == unit and e.message.startswith(starts))


def _step(entries: list[Entry], step: str) -> float:
    return _first(entries, "homelab-tunnel-bootstrap.service", f"homelab-tunnel: {step}: ")


@pytest.fixture(scope="module")
def first_boot(lab: Lab) -> list[Entry]:
    units = ("homelab-tunnel-bootstrap", "headscale", "caddy", "tailscaled")
    return _journal(lab, *units)


def test_no_package_started_its_service_on_its_example_config(first_boot: list[Entry]) -> None:
    packages_done = _step(first_boot, "packages")
    headscale_installed = _step(first_boot, "headscale-package")
    for unit in ("caddy.service", "tailscaled.service"):
        assert _first(first_boot, unit, "Starting ") > packages_done, unit
    assert _first(first_boot, "headscale.service", "Started ") > headscale_installed


def test_headscale_never_started_before_its_config_was_in_place(first_boot: list[Entry]) -> None:
    """Its config.yaml is installed by the headscale step, after edge-config; its first run
    already runs ours (the embedded DERP named after the edge) and never failed."""
    assert _first(first_boot, "headscale.service", "Started ") > _step(first_boot, "edge-config")
    headscale = [e.message for e in first_boot if e.unit == "headscale.service"]
    assert not any("ran into an error" in line for line in headscale)
    assert "RegionName:lab-edge edge" in next(line for line in headscale if "derp region" in line)


def test_caddy_first_started_on_our_caddyfile(first_boot: list[Entry], lab: Lab) -> None:
    assert _first(first_boot, "caddy.service", "Starting ") > _step(first_boot, "edge-config")
    caddy = "\n".join(e.message for e in first_boot if e.unit == "caddy.service")
    assert "/usr/share/caddy" not in caddy, "the package's welcome page was never served"


def test_tailscaled_trusts_the_edges_derp_through_the_private_ca(
    first_boot: list[Entry], lab: Lab
) -> None:
    """tailscaled started after update-ca-certificates took tls.ca_roots in, so it reaches
    the embedded DERP at the edge's name over TLS with the certificate Pebble issued."""
    trusted = lab.edge.box.path("/usr/local/share/ca-certificates/homelab-tunnel")
    assert sorted(path.suffix for path in trusted.iterdir()) == [".crt", ".crt"]
    status = json.loads(lab.edge.node.cli("status", "--json").stdout)
    assert status["Self"]["Relay"] == "headscale", "its home DERP is the edge's own"
    tailscaled = "\n".join(e.message for e in first_boot if e.unit == "tailscaled.service")
    assert "derp-999 connected" in tailscaled
    assert "x509" not in tailscaled


def test_negative_twin_a_package_installed_plainly_starts_its_service(lab: Lab) -> None:
    """What policy-rc.d keeps from happening: reinstalling Caddy the plain way starts it
    from its postinst, and the journal shows that start."""
    lab.edge.systemctl("stop", "caddy")
    mark = lab.edge.mark()
    try:
        reinstall = ["apt-get", "install", "--reinstall", "-y", "-q", "caddy"]
        lab.edge.box.run(reinstall, env={"DEBIAN_FRONTEND": "noninteractive"}, timeout=120)
        started = lab.edge.since(mark, "caddy")
        assert "Starting caddy.service" in started
    finally:
        lab.edge.systemctl("start", "caddy")
    wait_for("the sites again", lambda: "blog app" in lab.page("blog.lab.example"), 30)


# -- the metadata guard ----------------------------------------------------------------------


GROUPS = {"nobody": "nogroup"}
# curl's exit code when the connection is refused: the guard's `reject` answered.
REFUSED = 7


def _read_user_data(lab: Lab, user: str | None) -> subprocess.CompletedProcess[str]:
    group = GROUPS.get(user or "", user)
    as_user = ["setpriv", f"--reuid={user}", f"--regid={group}", "--clear-groups"] if user else []
    return lab.edge.box.run([*as_user, "curl", "-sS", "--max-time", "5", USER_DATA], check=False)


def test_root_reads_user_data_from_the_metadata_service(lab: Lab) -> None:
    assert _read_user_data(lab, None).stdout == lab.edge.user_data


@pytest.mark.parametrize("user", ["nobody", "headscale", "caddy"])
def test_no_other_process_on_the_droplet_reads_user_data(lab: Lab, user: str) -> None:
    done = _read_user_data(lab, user)
    assert (done.returncode, done.stdout) == (REFUSED, ""), done.stderr


def test_negative_twin_without_the_guard_any_user_would_read_it(lab: Lab) -> None:
    lab.edge.box.run(["nft", "delete", "table", "inet", "homelab_tunnel_metadata"])
    try:
        assert _read_user_data(lab, "nobody").stdout == lab.edge.user_data
    finally:
        lab.edge.box.run([METADATA_GUARD])
    assert _read_user_data(lab, "nobody").returncode == REFUSED
