"""The state volume: a sparse file behind a loop device, attached as DigitalOcean attaches one.

A droplet sees it at /dev/disk/by-id/scsi-0DO_Volume_<name> (udev's name for
DigitalOcean's volumes, which bootstrap.sh waits for). The file lives in the
run's directory and the device is created once per run, so replaced droplets
find what an earlier one wrote; teardown detaches it by its backing file
(support.lab.processes.loop_devices), also for a run whose owner was killed.
"""

from __future__ import annotations

from pathlib import Path

from support.lab.processes import loop_devices
from support.lab.shell import run


class Volume:
    def __init__(self, name: str, directory: Path, size_gb: int = 1) -> None:
        self.name = name
        self.file = directory / f"{name}.img"
        self.size_gb = size_gb
        self.device: str | None = None

    @property
    def by_id(self) -> str:
        """Where the droplet finds it."""
        return f"/dev/disk/by-id/scsi-0DO_Volume_{self.name}"

    def create(self) -> None:
        """A blank volume (all zeros: no filesystem until a droplet makes one)."""
        self.file.parent.mkdir(parents=True, exist_ok=True)
        with self.file.open("xb") as handle:
            handle.truncate(self.size_gb << 30)
        self.device = run(["losetup", "--find", "--show", self.file]).stdout.strip()

    def detach(self) -> None:
        """Detach what is still backed by this file: never a number another run reused."""
        for device in loop_devices(self.file.parent):
            if device == self.device:
                run(["losetup", "--detach", device], check=False)
        self.device = None
