"""Built once, kept outside the clone: one folder per artefact, named for a digest of its inputs.

Beside the Go programs (~/.cache/homelab-tunnel/go/), under .../mirror/: the
.debs nfpm made, the Debian packages apt fetched and the throwaway root
filesystem. A folder appears whole or not at all (built in a staging folder,
then renamed), so a build cut off half way is built again, and two test
workers building the same thing at once keep one result. A failure leaves
`<folder>.FAILED` with one line, which the tests quote when they skip.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from support.binaries import build_binaries


class MirrorUnavailable(RuntimeError):
    """Something the mirror serves cannot be built here; the message is the line a skip shows."""


def cache_root() -> Path:
    return build_binaries.cache_root().parent / "mirror"


def digest(parts: Iterable[bytes | str]) -> str:
    """One hex digest of the inputs, each length-prefixed so no two lists collide."""
    hashed = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        hashed.update(len(data).to_bytes(8, "big") + data)
    return hashed.hexdigest()


def file_digest(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def folder(kind: str, key: str) -> Path:
    return cache_root() / f"{kind}-{key[:16]}"


def failure(target: Path) -> Path:
    return target.with_name(target.name + ".FAILED")


def why_unbuilt(target: Path, what: str) -> str:
    marker = failure(target)
    if marker.exists():
        return f"{what} could not be built: {marker.read_text().strip()}"
    return f"{what} is not built yet ({target}); `make test` builds it"


def cached(kind: str, key: str, build: Callable[[Path], None]) -> Path:
    """The folder for `key`, running `build(staging)` first unless an earlier run did."""
    target = folder(kind, key)
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        build(staging)
        try:
            staging.rename(target)
        except OSError:
            if not target.is_dir():  # not another worker's finished copy: a real failure
                raise
        failure(target).unlink(missing_ok=True)
    except (OSError, subprocess.SubprocessError, RuntimeError) as exc:
        lines = [line for line in str(exc).splitlines() if line.strip()]
        failure(target).write_text((lines[0] if lines else type(exc).__name__) + "\n")
        raise MirrorUnavailable(f"{kind}: {lines[0] if lines else exc!r}") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
