"""Running doctor's commands on the edge over ssh, from the operator's machine.

BatchMode so a missing key fails at once instead of prompting; ConnectTimeout
so a closed port 22 (the default: `ssh_allowed_cidrs` is empty) fails quickly.
"""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Sequence

from homelab_tunnel.edge.collect import Result, Runner

CONNECT_TIMEOUT = 10


def check_target(target: str) -> str:
    """`target` as ssh takes it, or `ValueError`: never an option, never two words."""
    if not target or target.startswith("-") or any(c.isspace() for c in target):
        raise ValueError(f"{target!r} is not an ssh destination (expected e.g. root@203.0.113.10)")
    return target


def ssh_options() -> list[str]:
    return ["-o", "BatchMode=yes", "-o", f"ConnectTimeout={CONNECT_TIMEOUT}"]


def unreachable(target: str, stderr: str) -> str:
    """ssh's own last word (exit 255), with where to look."""
    detail = stderr.strip().splitlines()[-1:] or ["connection failed"]
    return (
        f"ssh {target}: {detail[0]} (is your address in ssh_allowed_cidrs? "
        "otherwise use the DigitalOcean console)"
    )


def ssh_runner(target: str) -> Runner:
    """A doctor `Runner` that sends each batch to `target` as one ssh session."""
    check_target(target)

    def run(commands: Sequence[Sequence[str]], timeout: float) -> Result:
        script = "; ".join(shlex.join(argv) for argv in commands)
        argv = ["ssh", *ssh_options(), target, script]
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
        if done.returncode == 255:
            # what came before the connection failed is kept
            return Result(255, done.stdout, unreachable(target, done.stderr))
        return Result(done.returncode, done.stdout, done.stderr)

    return run
