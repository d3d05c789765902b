"""`backups list`, `backups restore` and `backups status`: the edge's off-box backups, over ssh.

The work is done on the edge by restore-state.sh, the same program that
restores a blank volume at boot; these commands only run it and pass its
answer on, so there is one restore procedure, tested once. A restore runs on
the edge as a unit of its own: if the connection drops, it finishes (or puts
the previous state back) all the same, and `backups status` tells how it ended.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from homelab_tunnel.cli.app import DEFAULT_CONFIG, SshOption, app, reports_input_errors
from homelab_tunnel.errors import InputError
from homelab_tunnel.findings import one_line
from homelab_tunnel.tailnet.on_edge import RESTORE, RESTORE_TIMEOUT, run_on_edge
from homelab_tunnel.tailnet.ssh import known_hosts_file

backups = typer.Typer(
    help="List the edge's backups, restore a point in time.", no_args_is_help=True
)
app.add_typer(backups, name="backups")

# Only where the edge's host key is kept: <config>.known_hosts beside it.
KnownHostsConfig = Annotated[
    Path,
    typer.Option(
        "--config", "-c", help="The edge's config; its host key is kept beside it (.known_hosts)."
    ),
]


def _relay(
    target: str, config: Path, argv: tuple[str, ...], timeout: float, after: str = ""
) -> None:
    """The edge's answer, line by line with control characters escaped.

    Object names in the bucket are anyone's text who could write there: an
    escape sequence in one must not drive the operator's terminal. `after`:
    what to say when the connection was lost (the edge may still be at work).
    """
    result = run_on_edge(target, argv, timeout, known_hosts_file(config))
    typer.echo("\n".join(one_line(line) for line in result.stdout.split("\n")), nl=False)
    if result.returncode != 0:
        detail = result.stderr.strip() or f"exit code {result.returncode}"
        typer.echo(f"ssh {target}: {one_line(detail)}")
        if after and result.returncode in (124, 255):
            typer.echo(after)
        raise typer.Exit(1)


@backups.command("list")
@reports_input_errors
def list_backups(ssh: SshOption, config: KnownHostsConfig = DEFAULT_CONFIG) -> None:
    """The restore points: the database's time range and the key files' copies."""
    _relay(ssh, config, (RESTORE, "--list"), 120.0)


def _point_in_time(text: str) -> str:
    """An RFC 3339 time in UTC, as Litestream takes it; never in the future."""
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise InputError("--at", [f"{text!r} is not a time with a zone, e.g. 2026-11-29T21:00:00Z"])
    try:
        when = when.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+01:00 is before year 1 in UTC
        raise InputError("--at", [f"{text!r} is outside the years 1 to 9999 in UTC"]) from None
    if when > datetime.now(UTC):
        raise InputError("--at", [f"{text!r} is in the future"])
    # isoformat, not strftime: glibc's %Y writes year 1 as "1", which the edge refuses.
    return when.isoformat(timespec="seconds").replace("+00:00", "Z")


@backups.command("restore")
@reports_input_errors
def restore(
    ssh: SshOption,
    at: Annotated[
        str, typer.Option("--at", metavar="TIME", help="Point in time (RFC 3339, with a zone).")
    ],
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Replace the database on the volume (it is moved aside, never deleted).",
        ),
    ] = False,
    config: KnownHostsConfig = DEFAULT_CONFIG,
) -> None:
    """Restore Headscale's database and keys as they were at --at, on the edge's volume.

    Refused when the volume holds a database, unless --force; Headscale is
    stopped for the restore and started again. Only a state the edge sealed is
    installed; on any failure the previous state comes back.
    """
    argv = (RESTORE, "--at", _point_in_time(at), *(["--force"] if force else []))
    after = (
        "The restore goes on on the edge whatever happened to the connection: "
        f"`homelab-tunnel backups status --ssh {ssh}` tells how it ended."
    )
    _relay(ssh, config, argv, RESTORE_TIMEOUT, after)


@backups.command("status")
@reports_input_errors
def status(ssh: SshOption, config: KnownHostsConfig = DEFAULT_CONFIG) -> None:
    """How the last `backups restore` ended on the edge (or that it still runs)."""
    _relay(ssh, config, (RESTORE, "--status"), 60.0)
