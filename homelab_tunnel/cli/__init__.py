"""`homelab-tunnel`: thin commands over the library. Exit 0 ok, 1 problem found, 2 bad input.

Each module registers its commands on the one Typer app; importing them here
is what makes them part of the CLI.
"""

from homelab_tunnel.cli import account, backups, build, deploy, init, plan, status, tailnet
from homelab_tunnel.cli.app import app

__all__ = [
    "account",
    "app",
    "backups",
    "build",
    "deploy",
    "init",
    "main",
    "plan",
    "status",
    "tailnet",
]


def main() -> None:
    app()
