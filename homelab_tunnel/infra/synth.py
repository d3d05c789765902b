"""Synthesis: config in, `<outdir>/stacks/<name>/cdk.tf.json` out, all or nothing."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from cdktf import App

from homelab_tunnel.config import TunnelConfig
from homelab_tunnel.errors import InputError
from homelab_tunnel.infra.outdir import write_marker
from homelab_tunnel.infra.stacks.edge import EdgeStack
from homelab_tunnel.infra.state import relative_state_path
from homelab_tunnel.payload import edge_config_object, software_object, user_data


def add_edge_stack(app: App, config: TunnelConfig, outdir: Path, config_path: Path) -> EdgeStack:
    return EdgeStack(
        app,
        config.name,
        config=config,
        user_data=user_data(config),
        edge_config=edge_config_object(config),
        software=software_object(config),
        local_state_path=relative_state_path(config, config_path, outdir),
    )


def synth_for_cdktf_cli(config: TunnelConfig, config_path: Path) -> None:
    """What `cdktf synth` runs through main.py: the CLI picks the output directory.

    The marker lets `homelab-tunnel synth` replace that directory later.
    """
    app = App()
    add_edge_stack(app, config, Path(app.outdir), config_path)
    app.synth()
    write_marker(Path(app.outdir))


def synthesize(config: TunnelConfig, outdir: Path, *, config_path: Path) -> Path:
    """Write the stack into `outdir` atomically; return the stack's JSON path.

    Synthesis goes to a fresh directory beside `outdir` that replaces it only
    once complete, so a failure never leaves a half-written cdktf.out. Whether
    `outdir` may be replaced at all is `outdir.check_out_dir`'s call, made first.
    """
    final = outdir.resolve()
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
        staging.chmod(0o755)
    except OSError as exc:
        raise _cannot_write(outdir, config_path, exc) from None
    try:
        app = App(outdir=str(staging))
        add_edge_stack(app, config, final, config_path)
        app.synth()
        write_marker(staging)
        _replace_dir(staging, final)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise _cannot_write(outdir, config_path, exc) from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final / "stacks" / config.name / "cdk.tf.json"


def _cannot_write(outdir: Path, config_path: Path, exc: OSError) -> InputError:
    return InputError(
        str(config_path), [f"--out: cannot write {str(outdir)!r}: {exc.strerror or exc}"]
    )


def _replace_dir(new: Path, target: Path) -> None:
    """Swap `new` in for `target`, moving the earlier output aside into a folder made here.

    A fixed name such as `.cdktf.out.old` could be a folder the user keeps;
    `mkdtemp` makes a name no one else holds, so only synth's own output is
    ever deleted. If the swap fails, the earlier output is put back.
    """
    if not target.exists():
        new.rename(target)
        return
    aside = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
    previous = aside / target.name
    target.rename(previous)
    try:
        new.rename(target)
    except OSError:
        previous.rename(target)
        aside.rmdir()
        raise
    shutil.rmtree(aside, ignore_errors=True)
