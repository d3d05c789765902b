"""bootstrap.sh's volume step against real block devices: formatted only when proven blank.

Loop devices over sparse files stand for the DigitalOcean volume, probed by
this machine's real blkid (util-linux) and formatted by its real mkfs.ext4;
the rest of bootstrap runs on the sandbox's fakes. What blkid answers, read
in util-linux misc-utils/blkid.c: exit 2 (BLKID_EXIT_NOTFOUND) both when the
probe finds nothing and when it cannot open the device, exit 8
(BLKID_EXIT_AMBIVAL) when two signatures contradict each other. So bootstrap
reads the device first, and formats only on "readable and nothing found".
"""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from support.bootstrap_sandbox import Sandbox, make_sandbox
from support.config import config_with

SIZE = 64 << 20
CONFIG = config_with(backup={"enabled": False})
pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(c) for c in ("losetup", "blkid", "mkfs.ext4")),
    reason="loop devices need root, losetup, blkid and mkfs.ext4 (util-linux, e2fsprogs)",
)


@contextmanager
def loop_device(image: Path) -> Iterator[Path]:
    """A loop device over `image`, detached after the block."""
    done = subprocess.run(
        ["losetup", "--find", "--show", str(image)], capture_output=True, text=True, check=True
    )
    device = Path(done.stdout.strip())
    try:
        yield device
    finally:
        subprocess.run(["losetup", "--detach", str(device)], check=False)


def _blank(image: Path) -> None:
    with image.open("wb") as handle:
        handle.truncate(SIZE)


def _ext4(image: Path) -> None:
    _blank(image)
    subprocess.run(["mkfs.ext4", "-q", "-L", "edge-state", str(image)], check=True)


def _fat_boot_sector() -> bytes:
    """A FAT16 boot sector: at offset 0, where ext4 keeps nothing (its superblock is at 1024)."""
    sector = bytearray(512)
    sector[0:11] = b"\xeb\x3c\x90MSWIN4.1"
    struct.pack_into(
        "<HBHBHHBHHHII", sector, 11, 512, 4, 1, 2, 512, 0, 0xF8, 64, 32, 2, 0, SIZE // 512
    )
    sector[36:62] = b"\x80\x00\x29\x12\x34\x56\x78NO NAME    FAT16   "
    sector[510:512] = b"\x55\xaa"
    return bytes(sector)


def _fat(image: Path) -> None:
    _blank(image)
    with image.open("r+b") as handle:
        handle.write(_fat_boot_sector())


def _ext4_and_fat(image: Path) -> None:
    """Two signatures on one device: blkid's probe is ambivalent (exit 8)."""
    _ext4(image)
    with image.open("r+b") as handle:
        handle.write(_fat_boot_sector())


def _first_mebibyte(device: Path) -> str:
    with device.open("rb") as handle:
        return hashlib.sha256(handle.read(1 << 20)).hexdigest()


@contextmanager
def booted(tmp_path: Path, make: Callable[[Path], None]) -> Iterator[tuple[Sandbox, Path, str]]:
    image = tmp_path / "volume.img"
    make(image)
    with (
        loop_device(image) as device,
        make_sandbox(tmp_path, CONFIG, volume=device, real=("blkid", "mkfs.ext4")) as sandbox,
    ):
        yield sandbox, device, _first_mebibyte(device)


def _type(device: Path) -> str:
    done = subprocess.run(
        ["blkid", "-p", "-o", "value", "-s", "TYPE", str(device)], capture_output=True, text=True
    )
    return done.stdout.strip()


def test_a_blank_volume_is_formatted_ext4(tmp_path: Path) -> None:
    with booted(tmp_path, _blank) as (sandbox, device, _):
        result = sandbox.run(steps=("state-volume",))
        assert result.returncode == 0, result.stdout + result.stderr
        assert "state volume is blank (readable, no signature): formatting ext4" in result.stdout
        assert _type(device) == "ext4"


def test_an_ext4_volume_is_mounted_as_it_is(tmp_path: Path) -> None:
    with booted(tmp_path, _ext4) as (sandbox, device, before):
        result = sandbox.run(steps=("state-volume",))
        assert result.returncode == 0, result.stdout + result.stderr
        assert "formatting" not in result.stdout
        assert _first_mebibyte(device) == before


def _refused(sandbox: Sandbox, device: Path, before: str, why: str) -> None:
    result = sandbox.run(steps=("state-volume",))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == f"homelab-tunnel: FAILED: {why}"
    assert sandbox.status() == f"failed at step state-volume: {why}\n"
    assert "formatting" not in result.stdout
    assert _first_mebibyte(device) == before
    assert not [call for call in sandbox.calls() if call[0] == "mount"]


def test_a_volume_with_another_filesystem_is_refused(tmp_path: Path) -> None:
    with booted(tmp_path, _fat) as (sandbox, device, before):
        link = sandbox.root / "dev/disk/by-id/scsi-0DO_Volume_homelab-edge-state"
        _refused(sandbox, device, before, (
            f"state volume {link} holds vfat, not the edge's ext4; refusing to format or mount it"
        ))  # fmt: skip


def test_an_ambivalent_volume_is_refused(tmp_path: Path) -> None:
    with booted(tmp_path, _ext4_and_fat) as (sandbox, device, before):
        probe = subprocess.run(["blkid", "-p", str(device)], capture_output=True, text=True)
        assert probe.returncode == 8  # what util-linux 2.38 answers here
        link = sandbox.root / "dev/disk/by-id/scsi-0DO_Volume_homelab-edge-state"
        _refused(sandbox, device, before, (
            f"state volume {link} carries more than one signature (wipefs -n {link} lists "
            "them); refusing to format or mount it"
        ))  # fmt: skip


def test_a_volume_that_cannot_be_read_is_refused_though_blkid_finds_nothing(
    tmp_path: Path,
) -> None:
    """A device node with no device behind it: blkid exits 2, as for a blank one."""
    node = tmp_path / "gone"
    os.mknod(node, 0o600 | 0o060000, os.makedev(240, 7))  # a block device no driver serves
    probe = subprocess.run(["blkid", "-p", str(node)], capture_output=True, text=True)
    assert probe.returncode == 2
    with make_sandbox(tmp_path, CONFIG, volume=node, real=("blkid", "mkfs.ext4")) as sandbox:
        result = sandbox.run(steps=("state-volume",))
        link = sandbox.root / "dev/disk/by-id/scsi-0DO_Volume_homelab-edge-state"
        assert result.returncode == 1
        assert result.stderr.strip().splitlines()[-1] == (
            f"homelab-tunnel: FAILED: cannot read the state volume {link}; refusing to format or "
            "mount it (dmesg; the volume in the control panel)"
        )
        assert not [call for call in sandbox.calls() if call[0] in ("mount", "mkfs.ext4")]


def test_an_empty_loop_device_is_not_taken_for_a_blank_volume(tmp_path: Path) -> None:
    """Size 0 reads as nothing at all: blkid finds nothing, and reading finds nothing either."""
    image = tmp_path / "empty.img"
    image.touch()
    with (
        loop_device(image) as device,
        make_sandbox(tmp_path, CONFIG, volume=device, real=("blkid", "mkfs.ext4")) as sandbox,
    ):
        result = sandbox.run(steps=("state-volume",))
        assert result.returncode == 1
        assert "FAILED: cannot read the state volume" in result.stderr
