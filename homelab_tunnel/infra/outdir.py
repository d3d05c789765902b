"""What `synth --out` may replace: only a directory this tool wrote, or none at all.

Synthesis replaces the whole output directory, so pointing `--out` at the
project folder (`--out .`) or at a file (`--out edge.toml`) used to delete the
config, notes and local state. A directory is replaced only when it is
missing, empty, marked by an earlier synth, or laid out exactly as a cdktf
output (`manifest.json` and `stacks/`, what earlier versions and `cdktf synth`
wrote). No cdktf here: the check runs before jsii starts.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from homelab_tunnel.errors import InputError

MARKER = ".homelab-tunnel-synth"
MARKER_TEXT = (
    "Written by homelab-tunnel synth (or cdktf synth through main.py).\n"
    "The whole directory is replaced on every synth: keep nothing else here.\n"
)
CDKTF_LAYOUT = {"manifest.json", "stacks", MARKER}
ALLOWED = "give a directory that is missing, empty or written by an earlier synth"


def write_marker(outdir: Path) -> None:
    (outdir / MARKER).write_text(MARKER_TEXT, encoding="utf-8")


def check_out_dir(out: Path, *, config: Path, cwd: Path) -> Path:
    """The resolved output directory, or `InputError` (naming the config and --out) if unsafe."""
    try:
        final = _checked(out, config=config, cwd=cwd)
    except OSError as exc:
        raise InputError(str(config), [f"--out: cannot use {str(out)!r}: {_reason(exc)}"]) from None
    try:
        _probe_writable(final.parent)
    except OSError as exc:
        raise InputError(
            str(config), [f"--out: cannot write {str(out)!r}: {_reason(exc)}"]
        ) from None
    return final


def _probe_writable(parent: Path) -> None:
    """Synthesis stages beside --out; find out now, not after seconds of starting cdktf."""
    parent.mkdir(parents=True, exist_ok=True)
    tempfile.TemporaryDirectory(prefix=".homelab-tunnel-probe.", dir=parent).cleanup()


def _checked(out: Path, *, config: Path, cwd: Path) -> Path:
    final = out.resolve()
    existing = next(path for path in (final, *final.parents) if path.exists())
    problem = None
    if final.exists() and not final.is_dir():
        problem = "is a file, not a directory"
    elif not existing.is_dir():
        problem = f"is inside {str(existing)!r}, which is a file, not a directory"
    elif final == cwd.resolve() or final in cwd.resolve().parents:
        problem = "is the current directory or contains it"
    elif final in config.absolute().resolve().parents:
        problem = "contains the config file"
    elif final.is_dir() and not _replaceable(final):
        names = sorted(entry.name for entry in final.iterdir())
        shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
        problem = f"holds files synth did not write ({shown})"
    if problem:
        raise InputError(
            str(config),
            [f"--out: {str(out)!r} {problem}; synth replaces the whole directory, so {ALLOWED}"],
        )
    return final


def _replaceable(directory: Path) -> bool:
    entries = {entry.name for entry in directory.iterdir()}
    if not entries or (MARKER in entries and (directory / MARKER).is_file()):
        return True
    return entries <= CDKTF_LAYOUT and _is_cdktf_manifest(directory / "manifest.json")


def _is_cdktf_manifest(path: Path) -> bool:
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(manifest, dict) and isinstance(manifest.get("stacks"), dict)


def _reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__
