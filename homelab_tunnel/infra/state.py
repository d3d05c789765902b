"""Where the local Terraform state lives: beside the config file, wherever synth runs.

The state path used to be relative to the working directory, so synthesizing
the same config from another directory pointed Terraform at an empty state,
and the next plan quietly created a second edge. It is now anchored to the
config file's directory, and written into cdk.tf.json relative to the stack
directory, so the JSON carries no machine-specific absolute path as long as
the output directory and the config move together. No cdktf here: main.py
checks it before jsii starts.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from homelab_tunnel.config import LocalBackend, TunnelConfig
from homelab_tunnel.errors import InputError


def state_file(config: TunnelConfig, config_path: Path) -> Path:
    """`terraform.<name>.tfstate` in the config file's directory (symlinked files not followed)."""
    return config_path.absolute().parent.resolve() / f"terraform.{config.name}.tfstate"


def relative_state_path(config: TunnelConfig, config_path: Path, outdir: Path) -> str:
    """The state file as the backend names it: relative to `<outdir>/stacks/<name>`."""
    stack_dir = outdir.resolve() / "stacks" / config.name
    return os.path.relpath(state_file(config, config_path), stack_dir)


def check_state_location(config: TunnelConfig, config_path: Path, cwd: Path) -> None:
    """Refuse to move local state silently away from where earlier versions kept it.

    Before, the state was `terraform.<name>.tfstate` in the working directory.
    If that file exists and the one beside the config does not, synthesizing
    would start the next plan from empty state: say where to move it instead.
    """
    if not isinstance(config.backend, LocalBackend):
        return
    anchored = state_file(config, config_path)
    legacy = cwd.resolve() / anchored.name
    if legacy != anchored and legacy.exists() and not anchored.exists():
        raise InputError(
            str(config_path),
            [
                f"backend: local state is kept beside the config, at {anchored}, but "
                f"{legacy} exists (where earlier versions kept it, in the working "
                f"directory); move it there first (mv {shlex.quote(str(legacy))} "
                f"{shlex.quote(str(anchored))}) or the next "
                "plan starts from empty state and creates a second edge"
            ],
        )
