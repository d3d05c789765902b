"""Running commands on the edge over ssh, from the operator's machine, checking its host key.

BatchMode so a missing key fails at once instead of prompting; ConnectTimeout
so a closed port 22 (the default: `ssh_allowed_cidrs` is empty) fails quickly.

The edge's host keys live on its state volume (bootstrap's ssh-host-keys
step), so a replaced droplet answers with the same ones. The tool keeps them
in a known_hosts file of its own beside the config, like local state: the
first contact learns the key (ssh's `accept-new`, which never takes a changed
one) and says which fingerprint it trusted, for the operator to compare with
the edge's "edge ready" line on the droplet's console; every later contact,
and every replacement, is checked against it.
"""

from __future__ import annotations

import base64
import hashlib
import shlex
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from homelab_tunnel.edge.collect import Result, Runner

CONNECT_TIMEOUT = 10
CHANGED = "REMOTE HOST IDENTIFICATION HAS CHANGED"


def known_hosts_file(config: Path) -> Path:
    """The edge's host keys, as the tool trusts them: beside `config`, named after it."""
    return config.with_name(f"{config.stem}.known_hosts")


def fingerprints(known_hosts: Path) -> list[str]:
    """Each key line of `known_hosts` as ssh prints its fingerprint: "SHA256:... (ED25519)"."""
    found = []
    for line in _key_lines(known_hosts):
        kind, blob = line.split()[1:3]
        digest = hashlib.sha256(base64.b64decode(blob)).digest()
        name = "ECDSA" if kind.startswith("ecdsa-") else kind.removeprefix("ssh-").upper()
        found.append(f"SHA256:{base64.b64encode(digest).decode().rstrip('=')} ({name})")
    return found


def host_keys(known_hosts: Path) -> list[str]:
    """The distinct "<type> <key>" pairs in `known_hosts` (the file is the edge's alone)."""
    keys = []
    for line in _key_lines(known_hosts):
        key = " ".join(line.split()[1:3])
        if key not in keys:
            keys.append(key)
    return keys


def _key_lines(known_hosts: Path) -> list[str]:
    try:
        text = known_hosts.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    lines = [line.strip() for line in text.splitlines()]
    return [line for line in lines if line and not line.startswith("#") and len(line.split()) >= 3]


def check_target(target: str) -> str:
    """`target` as ssh takes it, or `ValueError`: never an option, never two words."""
    if not target or target.startswith("-") or any(c.isspace() for c in target):
        raise ValueError(f"{target!r} is not an ssh destination (expected e.g. root@203.0.113.10)")
    return target


def ssh_options(known_hosts: Path) -> list[str]:
    """Never a prompt; the host key checked against `known_hosts`, learned at first contact."""
    return [
        *("-o", "BatchMode=yes", "-o", f"ConnectTimeout={CONNECT_TIMEOUT}"),
        *("-o", "StrictHostKeyChecking=accept-new", "-o", f"UserKnownHostsFile={known_hosts}"),
    ]


def say_first_contact(target: str, known_hosts: Path, trusted: Sequence[str]) -> None:
    """Name the host keys ssh learned since `trusted` (the fingerprints before it ran)."""
    learned = [key for key in fingerprints(known_hosts) if key not in trusted]
    if learned:
        print(
            f"ssh {target}: first contact: trusted the edge's host key {', '.join(learned)}, "
            f"kept in {known_hosts}; it must match the 'ssh host key' in the edge's "
            "'edge ready' line (droplet console, /var/log/cloud-init-output.log)",
            file=sys.stderr,
        )


def ssh_runner(target: str, known_hosts: Path) -> Runner:
    """A doctor `Runner` that sends each batch to `target` as one ssh session."""
    check_target(target)

    def run(commands: Sequence[Sequence[str]], timeout: float) -> Result:
        script = "; ".join(shlex.join(argv) for argv in commands)
        argv = ["ssh", *ssh_options(known_hosts), target, script]
        trusted = fingerprints(known_hosts)
        try:
            done = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                errors="replace",
                timeout=timeout + CONNECT_TIMEOUT,
                check=False,
                stdin=subprocess.DEVNULL,
            )
        except FileNotFoundError:
            return Result(127, "", "ssh: command not found")
        except subprocess.TimeoutExpired:
            return Result(124, "", f"ssh {target}: no answer within {timeout + CONNECT_TIMEOUT:g}s")
        say_first_contact(target, known_hosts, trusted)
        if done.returncode == 255:
            # what came before the connection failed is kept
            return Result(255, done.stdout, unreachable(target, done.stderr, known_hosts))
        return Result(done.returncode, done.stdout, done.stderr)

    return run


def unreachable(target: str, stderr: str, known_hosts: Path) -> str:
    """One line: why ssh could not run the command (exit 255), with where to look."""
    if CHANGED in stderr:
        host = target.rsplit("@", 1)[-1]
        return (
            f"ssh {target}: the edge's host key is not the one kept in {known_hosts} "
            "(a droplet on a new volume makes new keys; anything else may not be your edge). "
            "Compare the 'ssh host key' in its 'edge ready' line on the droplet console, then "
            f"`ssh-keygen -R {host} -f {known_hosts}` and connect again"
        )
    detail = stderr.strip().splitlines()[-1:] or ["connection failed"]
    return (
        f"ssh {target}: {detail[0]} (is your address in ssh_allowed_cidrs? "
        "otherwise use the DigitalOcean console)"
    )
