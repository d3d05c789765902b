"""bootstrap's ssh-host-keys step: the droplet's host keys kept on the state volume.

The first droplet saves the keys cloud-init made; a replacement on the same
volume answers with them (installed, sshd reloaded); the "edge ready" line
carries the ed25519 fingerprint ssh-keygen prints. The booted lab proves the
same with the real sshd across a replacement (tests/lab/test_ssh.py).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.bootstrap_sandbox import Sandbox, make_sandbox
from support.moto_s3 import S3Server

from homelab_tunnel.config import TunnelConfig

KEY = "etc/ssh/ssh_host_ed25519_key"
RELOAD = ["systemctl", "try-reload-or-restart", "ssh.service"]


@pytest.fixture
def sandbox(tmp_path: Path, example_config: TunnelConfig, s3_server: S3Server) -> Iterator[Sandbox]:
    with make_sandbox(tmp_path, example_config, s3=s3_server) as made:
        yield made


def _kept(sandbox: Sandbox, config: TunnelConfig) -> Path:
    return sandbox.root / "mnt" / config.volume_name / "ssh-host-keys"


def _fingerprint(public_key: Path) -> str:
    listed = subprocess.run(
        ["ssh-keygen", "-l", "-E", "sha256", "-f", str(public_key)],
        capture_output=True,
        text=True,
        check=True,
    )
    return listed.stdout.split()[1]


def _new_droplet_keys(sandbox: Sandbox) -> None:
    """What cloud-init's ssh module makes on a replacement: other keys."""
    key = sandbox.root / KEY
    key.unlink()
    key.with_suffix(".pub").unlink()
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True, timeout=30
    )


def test_the_first_droplet_saves_its_host_keys_on_the_volume(
    sandbox: Sandbox, example_config: TunnelConfig
) -> None:
    result = sandbox.run()
    assert result.returncode == 0, result.stdout + result.stderr
    kept = _kept(sandbox, example_config)
    assert (kept / "ssh_host_ed25519_key").read_bytes() == (sandbox.root / KEY).read_bytes()
    assert (kept / "ssh_host_ed25519_key").stat().st_mode & 0o777 == 0o600
    assert kept.stat().st_mode & 0o777 == 0o700
    fingerprint = _fingerprint(sandbox.root / f"{KEY}.pub")
    assert (
        sandbox.step("ssh-host-keys") == f"ssh host key {fingerprint} (ED25519) saved to the volume"
    )
    assert result.stdout.splitlines()[-1].endswith(f", ssh host key {fingerprint}")
    assert RELOAD not in sandbox.calls()


def test_a_replacement_answers_with_the_volumes_host_keys(
    sandbox: Sandbox, example_config: TunnelConfig
) -> None:
    assert sandbox.run().returncode == 0
    first = (sandbox.root / KEY).read_bytes()
    first_fingerprint = _fingerprint(sandbox.root / f"{KEY}.pub")
    _new_droplet_keys(sandbox)
    assert (sandbox.root / KEY).read_bytes() != first, "the new droplet made its own"
    sandbox.reset_calls()
    result = sandbox.run()
    assert result.returncode == 0, result.stdout + result.stderr
    assert (sandbox.root / KEY).read_bytes() == first
    assert (sandbox.root / KEY).stat().st_mode & 0o777 == 0o600
    assert RELOAD in sandbox.calls(), "sshd must read the kept keys"
    assert sandbox.step("ssh-host-keys") == (
        f"ssh host key {first_fingerprint} (ED25519) installed from the volume"
    )
    assert result.stdout.splitlines()[-1].endswith(f", ssh host key {first_fingerprint}")


def test_negative_twin_the_same_droplet_again_reloads_nothing(sandbox: Sandbox) -> None:
    assert sandbox.run().returncode == 0
    sandbox.reset_calls()
    assert sandbox.run().returncode == 0
    assert RELOAD not in sandbox.calls()
    assert sandbox.step("ssh-host-keys").endswith("kept on the volume")


def test_without_a_host_key_to_keep_bootstrap_stops_saying_why(sandbox: Sandbox) -> None:
    (sandbox.root / KEY).unlink()
    result = sandbox.run()
    assert result.returncode == 1
    assert "FAILED: no ssh host key in /etc/ssh to keep" in result.stderr
    assert not sandbox.step("packages"), "nothing after it ran"
