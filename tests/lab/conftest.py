"""One lab for all scenarios; run in an order that keeps it usable.

Read-only scenarios first, then the ones that disturb the lab and restore it
(egress, blocked UDP, the live view with UDP blocked, the refused client), and
the droplet's replacement last.
test_upgrade, test_backups, test_policy and test_in_place bring up labs of
their own (another Headscale release, backups on, the policy sites, a sequence
of configs) with `lab_with`. Modules not in ORDER need no lab (they skip, or
not, for reasons of their own).
The lab is always torn down, and the router's leak guard must have dropped
nothing: no packet tried to leave the lab's addresses.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest
from support.lab.lab import Lab
from support.lab.requirements import LabUnavailable, check_machine, find_programs

HERE = Path(__file__).resolve().parent
ORDER = (
    "test_first_boot",
    "test_headscale",
    "test_joins",
    "test_sites",
    "test_direct",
    "test_reserved_ip",
    "test_udp_block",
    "test_status",
    "test_ports",
    "test_old_client",
    "test_reboot",
    "test_replacement",
    "test_boot_failures",
    "test_upgrade",
    "test_backups",
    "test_policy",
    "test_in_place",
)


def _unavailable() -> str | None:
    """Why the lab cannot run here (root, namespaces, a program), checked once."""
    try:
        check_machine()
        find_programs()
    except LabUnavailable as exc:
        return f"lab: {exc}"
    return None


UNAVAILABLE = _unavailable()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    positions = [
        n for n, item in enumerate(items) if item.path.parent == HERE and item.path.stem in ORDER
    ]
    ordered = sorted((items[n] for n in positions), key=lambda item: ORDER.index(item.path.stem))
    for position, item in zip(positions, ordered, strict=True):
        items[position] = item
        if UNAVAILABLE:
            item.add_marker(pytest.mark.skip(reason=UNAVAILABLE))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item,
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Every lab skip at one location, so the summary says it once: "SKIPPED [42] ..."."""
    report = yield
    if report.skipped and isinstance(report.longrepr, tuple):
        if item.path.stem not in ORDER:  # once per module that needs no lab
            report.longrepr = (str(item.path), 0, report.longrepr[2])
        elif UNAVAILABLE:
            report.longrepr = (__file__, 0, report.longrepr[2])
    return report


@contextlib.contextmanager
def running_lab(**options: Any) -> Iterator[Lab]:
    """A lab up for the block (`Lab` options), always down after it; nothing may have leaked."""
    try:
        lab = Lab(**options)
    except LabUnavailable as exc:
        pytest.skip(f"lab: {exc}")
    lab.up()
    leaked = None
    try:
        yield lab
        leaked = lab.internet.leaked_packets()
    finally:
        lab.down()
    assert leaked == 0, f"{leaked} packet(s) tried to leave the lab's addresses"


@pytest.fixture(scope="package")  # down after the last scenario, not at the session's end
def lab() -> Iterator[Lab]:
    """The shared lab of the scenarios that do not bring up their own."""
    with running_lab() as lab:
        yield lab


@pytest.fixture(scope="package")
def lab_with() -> Callable[..., contextlib.AbstractContextManager[Lab]]:
    """`with lab_with(release=..., backups=True) as lab:` for a module's lab of its own."""
    return running_lab
