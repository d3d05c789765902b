"""Scenario 6, the seed's incident: a Tailscale 1.78.3 client against Headscale 0.29.2.

Headscale refuses it and says why only in its own log; doctor's journal scan
finds that line, and `check` refuses a config that declares such a homelab.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass

import pytest
import tomli_w
from support.lab.deploy import lab_config_document
from support.lab.lab import Lab
from support.lab.shell import wait_for

from homelab_tunnel.tailnet.join import MINT_KEY

REFUSAL = "unsupported client version: v1.78 (109)"


@dataclass
class Observed:
    version: str
    up: subprocess.CompletedProcess[str]
    refusals: list[str]
    nodes: list[str]
    doctor: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def observed(lab: Lab) -> Observed:
    logged = len(lab.edge.box.log("headscale"))
    with lab.old_client() as old:
        old.start()
        key = lab.edge.box.run([MINT_KEY, "oldclient", "10m"]).stdout.strip()
        up = old.cli(
            *("up", "--login-server", lab.config.headscale_url, "--auth-key", key),
            *("--hostname", "oldclient", "--accept-dns=false", "--timeout", "5s"),
            check=False,
        )
        refusals = wait_for(
            "Headscale's refusal in its log",
            lambda: [
                line
                for line in lab.edge.box.log("headscale")[logged:].splitlines()
                if "unsupported client" in line
            ],
            15,
        )
        version = old.cli("version").stdout.splitlines()[0]
        nodes = [node["name"] for node in lab.edge.nodes()]
    return Observed(version, up, refusals, nodes, lab.doctor())


def test_the_old_client_is_tailscale_1_78_3(observed: Observed) -> None:
    assert observed.version.startswith("1.78.3")


def test_headscale_refuses_the_old_client(observed: Observed, lab: Lab) -> None:
    assert observed.up.returncode != 0
    assert "timeout waiting for Tailscale service to enter a Running state" in observed.up.stderr
    assert observed.nodes == [lab.config.name, "homelab"]  # never registered


def test_headscale_logs_unsupported_client_version(observed: Observed) -> None:
    assert REFUSAL in observed.refusals[0]
    # Only this form: the refusal comes before Headscale's "unsupported client connected".
    assert all("ERR http internal server error" in line for line in observed.refusals)


def test_doctor_finds_the_refusal_in_headscales_journal(observed: Observed) -> None:
    assert observed.doctor.returncode == 1, observed.doctor.stdout
    assert (
        "problem: Headscale journal: Headscale rejected Tailscale 1.78 (capability version 109) "
        "as unsupported" in observed.doctor.stdout
    )
    assert f"journal: {observed.refusals[0][:80]}" in observed.doctor.stdout


def test_check_refuses_a_homelab_on_1_78_3(lab: Lab) -> None:
    document = lab_config_document(lab.pebble.roots())
    document["homelab"]["tailscale_version"] = "1.78.3"
    path = lab.directory / "old-homelab.toml"
    path.write_bytes(tomli_w.dumps(document).encode())
    done = lab.cli("check", "--config", str(path), check=False)
    assert done.returncode == 1, done.stdout
    assert "problem: homelab.tailscale_version" in done.stdout
    assert "1.78.3" in done.stdout and "1.80" in done.stdout
