"""One mirror per module that asks for it, with its installer box; skipped, saying why, where
the lab cannot run or the packages cannot be built."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.lab.requirements import LabUnavailable, check_machine
from support.mirror.build import contents
from support.mirror.cache import MirrorUnavailable
from support.mirror.installer import MirrorRun, mirror_run


@pytest.fixture(scope="module")
def run() -> Iterator[MirrorRun]:
    try:
        check_machine()
        built = contents()
    except (LabUnavailable, MirrorUnavailable) as exc:
        pytest.skip(f"package mirror: {exc}")
    with mirror_run(built) as running:
        yield running
