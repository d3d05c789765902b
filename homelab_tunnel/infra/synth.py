"""Synthesis: config in, `<outdir>/stacks/<name>/cdk.tf.json` out, all or nothing."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from cdktf import App

from homelab_tunnel.config import TunnelConfig
from homelab_tunnel.infra.stacks.edge import EdgeStack
from homelab_tunnel.payload import user_data


def local_state_path(config: TunnelConfig, outdir: Path) -> str:
    """State file next to the project, relative to the stack directory.

    A relative path keeps the JSON the same on every machine; keeping it out
    of cdktf.out means re-synthesizing never touches state.
    """
    state = Path.cwd() / f"terraform.{config.name}.tfstate"
    return os.path.relpath(state, outdir.resolve() / "stacks" / config.name)


def add_edge_stack(app: App, config: TunnelConfig, outdir: Path) -> EdgeStack:
    return EdgeStack(
        app,
        config.name,
        config=config,
        user_data=user_data(config),
        local_state_path=local_state_path(config, outdir),
    )


def synth_for_cdktf_cli(config: TunnelConfig) -> None:
    """What `cdktf synth` runs through main.py: the CLI picks the output directory."""
    app = App()
    add_edge_stack(app, config, Path(app.outdir))
    app.synth()


def synthesize(config: TunnelConfig, outdir: Path) -> Path:
    """Write the stack into `outdir` atomically; return the stack's JSON path.

    Synthesis goes to a fresh directory beside `outdir` that replaces it only
    once complete, so a failure never leaves a half-written cdktf.out.
    """
    final = outdir.resolve()
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    staging.chmod(0o755)
    try:
        app = App(outdir=str(staging))
        add_edge_stack(app, config, final)
        app.synth()
        _replace_dir(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final / "stacks" / config.name / "cdk.tf.json"


def _replace_dir(new: Path, target: Path) -> None:
    old = target.with_name(f".{target.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        target.rename(old)
    new.rename(target)
    shutil.rmtree(old, ignore_errors=True)
