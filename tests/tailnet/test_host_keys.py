"""The edge's ssh host key, checked on every contact, never with checking turned off.

The tool keeps the edge's host keys in `<config>.known_hosts` beside the
config: the first contact learns them (accept-new) and says which fingerprint
it trusted; a later contact with another key is refused with what to do. The
join script carries the kept keys and holds ssh to them, or learns the key on
first contact. A stand-in ssh does what ssh does with UserKnownHostsFile; the
booted lab (tests/lab/test_ssh.py) proves it with the real ssh and sshd.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from support.config import write_config
from typer.testing import CliRunner

from homelab_tunnel.cli import app
from homelab_tunnel.tailnet.ssh import fingerprints, host_keys, known_hosts_file, ssh_runner

needs_tools = pytest.mark.skipif(
    shutil.which("ssh-keygen") is None or shutil.which("bash") is None,
    reason="ssh-keygen (openssh-client) and bash are needed",
)

# Records its arguments; on first contact (no line for the host yet) adds the key as
# accept-new would; with EDGE_KEY_CHANGED, refuses as ssh does a changed key.
SSH = """#!/bin/sh
printf '%s\\n' "$*" >>"$SSH_CALLS"
for arg; do
  case "$arg" in UserKnownHostsFile=*) known="${arg#UserKnownHostsFile=}" ;; esac
done
if [ -n "${EDGE_KEY_CHANGED:-}" ]; then
  echo "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@" >&2
  echo "@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @" >&2
  echo "Host key verification failed." >&2
  exit 255
fi
if [ -n "$known" ] && ! grep -q "^203.0.113.10 " "$known" 2>/dev/null; then
  echo "203.0.113.10 $EDGE_KEY" >>"$known"
fi
echo "answer"
"""


@pytest.fixture
def edge_key(tmp_path: Path) -> str:
    """A host key as the edge's sshd has it: "<type> <base64>"."""
    key = tmp_path / "host_key"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True, timeout=30
    )
    return " ".join(key.with_suffix(".pub").read_text().split()[:2])


@pytest.fixture
def fake_ssh(tmp_path: Path, edge_key: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "ssh").write_text(SSH)
    (bin_dir / "ssh").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("SSH_CALLS", str(tmp_path / "calls"))
    monkeypatch.setenv("EDGE_KEY", edge_key)
    return tmp_path / "calls"


def _ssh_keygen_fingerprint(known_hosts: Path) -> str:
    listed = subprocess.run(
        ["ssh-keygen", "-l", "-f", str(known_hosts)], capture_output=True, text=True, check=True
    ).stdout.split()
    return f"{listed[1]} {listed[-1]}"  # "SHA256:... (ED25519)"


def test_the_known_hosts_file_sits_beside_the_config() -> None:
    assert known_hosts_file(Path("/srv/edge/prod.toml")) == Path("/srv/edge/prod.known_hosts")


@needs_tools
def test_fingerprints_are_the_ones_ssh_keygen_prints(tmp_path: Path, edge_key: str) -> None:
    known = tmp_path / "edge.known_hosts"
    known.write_text(f"# a comment\n203.0.113.10 {edge_key}\n198.51.100.7 {edge_key}\n")
    assert fingerprints(known)[0] == _ssh_keygen_fingerprint(known)
    assert host_keys(known) == [edge_key], "one key, however many addresses"


@needs_tools
def test_the_first_contact_trusts_the_key_and_says_which(
    tmp_path: Path, fake_ssh: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    known = tmp_path / "edge.known_hosts"
    run = ssh_runner("root@203.0.113.10", known)
    assert run([["true"]], 10).stdout == "answer\n"
    said = capsys.readouterr().err
    assert said.startswith("ssh root@203.0.113.10: first contact: trusted the edge's host key ")
    assert _ssh_keygen_fingerprint(known) in said
    assert "StrictHostKeyChecking=accept-new" in fake_ssh.read_text()
    run([["true"]], 10)
    assert capsys.readouterr().err == "", "a known key is not announced again"


@needs_tools
def test_a_changed_host_key_is_refused_with_what_to_do(
    tmp_path: Path, fake_ssh: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    known = tmp_path / "edge.known_hosts"
    monkeypatch.setenv("EDGE_KEY_CHANGED", "1")
    result = ssh_runner("root@203.0.113.10", known)([["true"]], 10)
    assert result.returncode == 255
    assert f"not the one kept in {known}" in result.stderr
    assert f"ssh-keygen -R 203.0.113.10 -f {known}" in result.stderr


@needs_tools
def test_doctor_keeps_the_key_beside_its_config(tmp_path: Path, fake_ssh: Path) -> None:
    config = write_config(tmp_path)
    CliRunner().invoke(app, ["doctor", "--config", str(config), "--ssh", "root@203.0.113.10"])
    assert f"UserKnownHostsFile={known_hosts_file(config)}" in fake_ssh.read_text()
    assert host_keys(known_hosts_file(config)), "learned at first contact"


@needs_tools
def test_backups_commands_keep_the_key_beside_the_config_they_are_given(
    tmp_path: Path, fake_ssh: Path
) -> None:
    config = tmp_path / "edge.toml"
    args = ["backups", "status", "--ssh", "root@203.0.113.10", "--config", str(config)]
    assert CliRunner().invoke(app, args).exit_code == 0
    assert f"UserKnownHostsFile={tmp_path}/edge.known_hosts" in fake_ssh.read_text()


@needs_tools
def test_status_keeps_the_key_beside_its_config_and_says_the_first_contact(
    tmp_path: Path, fake_ssh: Path
) -> None:
    config = write_config(tmp_path)
    args = ["status", "--config", str(config), "--ssh", "root@203.0.113.10", "--once"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output  # the stand-in sends no frame
    assert f"UserKnownHostsFile={known_hosts_file(config)}" in fake_ssh.read_text()
    assert "StrictHostKeyChecking=accept-new" in fake_ssh.read_text()
    assert host_keys(known_hosts_file(config)), "learned at first contact"
    assert "first contact: trusted the edge's host key SHA256:" in result.output


@needs_tools
def test_status_refuses_a_changed_host_key_with_what_to_do(
    tmp_path: Path, fake_ssh: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_config(tmp_path)
    monkeypatch.setenv("EDGE_KEY_CHANGED", "1")
    args = ["status", "--config", str(config), "--ssh", "root@203.0.113.10", "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert f"not the one kept in {known_hosts_file(config)}" in result.output


# -- the join script -----------------------------------------------------------------------


def _join_script(config: Path) -> str:
    args = ["join-command", "--config", str(config), "--edge", "203.0.113.10"]
    result = CliRunner(env={"COLUMNS": "200"}).invoke(app, args)
    assert result.exit_code == 0, result.output
    return result.stdout


def _run_join(tmp_path: Path, script: str) -> subprocess.CompletedProcess[str]:
    """Up to the key: the script's steps 1 and 2, with ssh the stand-in."""
    steps = script.split("# 3. Join.")[0] + 'echo "key=$KEY"\n'
    return subprocess.run(
        ["bash", "-c", steps],
        env={**os.environ, "HOME": str(tmp_path), "TAILSCALE_VERSION": "1.102.3"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@needs_tools
def test_a_join_to_an_edge_the_tool_knows_holds_ssh_to_its_kept_key(
    tmp_path: Path, fake_ssh: Path, edge_key: str
) -> None:
    config = write_config(tmp_path)
    known_hosts_file(config).write_text(f"203.0.113.10 {edge_key}\n")
    (tmp_path / "bin/tailscale").write_text("#!/bin/sh\necho 1.102.3\n")
    (tmp_path / "bin/tailscale").chmod(0o755)
    script = _join_script(config)
    assert "StrictHostKeyChecking=no" not in script
    done = _run_join(tmp_path, script)
    assert done.returncode == 0, done.stderr
    (call,) = fake_ssh.read_text().splitlines()
    assert "-o StrictHostKeyChecking=yes -o UserKnownHostsFile=" in call
    assert done.stdout.splitlines()[-1] == "key=answer"
    assert re.search(r"^edge host key: SHA256:\S+ \(ED25519\)$", done.stdout, re.MULTILINE)


@needs_tools
def test_a_first_join_learns_the_key_and_never_turns_checking_off(
    tmp_path: Path, fake_ssh: Path
) -> None:
    config = write_config(tmp_path)
    (tmp_path / "bin/tailscale").write_text("#!/bin/sh\necho 1.102.3\n")
    (tmp_path / "bin/tailscale").chmod(0o755)
    script = _join_script(config)
    assert "StrictHostKeyChecking=no" not in script
    done = _run_join(tmp_path, script)
    assert done.returncode == 0, done.stderr
    (call,) = fake_ssh.read_text().splitlines()
    assert "-o StrictHostKeyChecking=accept-new root@203.0.113.10" in call


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_the_script_with_kept_keys_passes_shellcheck(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    known_hosts_file(config).write_text("203.0.113.10 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB\n")
    script = tmp_path / "join.sh"
    script.write_text(_join_script(config))
    done = subprocess.run(["shellcheck", str(script)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout
