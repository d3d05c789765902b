"""The commands doctor runs on the edge, and the evidence they return.

The same batches run locally (the health timer) and over ssh (the CLI's
`doctor --ssh`), so a `Runner` abstracts where; nothing here judges.
"""

from __future__ import annotations

import ipaddress
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from homelab_tunnel.edge.status import SourceError, parse_status, peer_addresses

STATUS_COMMAND = ("tailscale", "status", "--json")


def ping_command(upstream: str, timeout: str = "5s") -> tuple[str, ...]:
    """One disco ping: starts path discovery so an idle upstream gets a current path."""
    return ("tailscale", "ping", "-c", "1", "--timeout", timeout, _ping_target(upstream))


def _ping_target(upstream: str) -> str:
    """The upstream as `tailscale ping` finds it among its peers.

    It matches a peer by short name or by the full DNSName, trailing dot
    included (cmd/tailscale/cli/ping.go, `tailscaleIPFromArg`); any other name
    goes to the system resolver, which on the edge (--accept-dns=false) knows
    no MagicDNS names, and the ping fails before warming anything.
    """
    try:
        ipaddress.ip_address(upstream)
    except ValueError:
        if "." in upstream and not upstream.endswith("."):
            return upstream + "."
    return upstream


def whois_command(address: str) -> tuple[str, ...]:
    return ("tailscale", "whois", "--json", address)


def journal_command(since: str) -> tuple[str, ...]:
    return ("journalctl", "-u", "headscale", "--since", since, "-o", "cat", "--no-pager")


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str
    stderr: str


Runner = Callable[[Sequence[Sequence[str]], float], Result]
"""Runs a batch of commands on the edge; stdout concatenated, the last exit code."""


def run_local(commands: Sequence[Sequence[str]], timeout: float) -> Result:
    """The timer's runner: each command in turn on this machine, all within `timeout`.

    Output is decoded leniently: journal lines may carry any bytes, and one
    bad byte must not hide the rest of the evidence.
    """
    deadline = time.monotonic() + timeout
    stdout: list[str] = []
    stderr: list[str] = []
    code = 0
    for argv in commands:
        left = max(deadline - time.monotonic(), 1.0)
        try:
            done = subprocess.run(
                list(argv),
                capture_output=True,
                text=True,
                errors="replace",
                timeout=left,
                check=False,
            )
        except FileNotFoundError:
            stderr.append(f"{argv[0]}: command not found\n")
            code = 127
            continue
        except OSError as exc:  # e.g. not executable
            stderr.append(f"{argv[0]}: {exc.strerror or exc}\n")
            code = 126
            continue
        except subprocess.TimeoutExpired:
            stderr.append(f"{' '.join(argv)}: no answer within {left:.0f}s\n")
            code = 124
            continue
        stdout.append(done.stdout)
        stderr.append(done.stderr)
        code = done.returncode
    return Result(code, "".join(stdout), "".join(stderr))


@dataclass(frozen=True)
class Evidence:
    """What was read on the edge, before any judgement."""

    status: str
    whois: str = ""
    journal: str | None = None
    notes: tuple[str, ...] = ()


def collect(
    run: Runner, *, upstreams: Sequence[str], journal_since: str | None, source: str
) -> Evidence:
    """Warm each upstream's path, then read status, every peer's whois and the journal."""
    if upstreams:
        run([ping_command(upstream) for upstream in upstreams], 15.0 * len(upstreams))
    status = run([STATUS_COMMAND], 30.0)
    if status.returncode != 0:
        raise SourceError(f"`tailscale status --json` failed on {source}: {last_line(status)}")
    notes: list[str] = []
    addresses = peer_addresses(parse_status(status.stdout))
    whois = Result(0, "", "")
    if addresses:
        whois = run([whois_command(address) for address in addresses], 5.0 * len(addresses) + 10)
    journal: str | None = None
    if journal_since is not None:
        read = run([journal_command(journal_since)], 30.0)
        if read.returncode == 0:
            journal = read.stdout
        else:
            notes.append(f"Headscale journal not read on {source}: {last_line(read)}")
    return Evidence(status.stdout, whois.stdout, journal, tuple(notes))


def last_line(result: Result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    return lines[-1].strip() if lines else f"exit code {result.returncode}"
