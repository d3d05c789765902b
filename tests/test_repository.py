"""The repository itself: nothing half-merged is ever committed."""

from __future__ import annotations

import subprocess

from support.config import ROOT

MARKERS = ("<<<<<<< ", ">>>>>>> ")


def test_no_file_holds_a_merge_conflict_marker() -> None:
    tracked = (
        subprocess.run(
            ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=60
        )
        .stdout.decode()
        .split("\0")
    )
    found = []
    for name in filter(None, tracked):
        path = ROOT / name
        if not path.is_file() or path.stat().st_size > 2_000_000:
            continue
        text = path.read_bytes().decode("utf-8", errors="ignore")
        found += [
            f"{name}:{number}"
            for number, line in enumerate(text.splitlines(), 1)
            if line.startswith(MARKERS)
        ]
    assert found == []
