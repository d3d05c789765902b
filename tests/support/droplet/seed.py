"""What a droplet's first boot finds besides the Debian image: the image's cloud-init settings
and the NoCloud seed that carries its user_data, byte for byte.

On DigitalOcean cloud-init reads user_data from the metadata service through
its DigitalOcean datasource, which needs the hypervisor's DMI strings; a
container has none, so the box seeds the same bytes through NoCloud's seed
directory (cloudinit/sources/DataSourceNoCloud.py reads
/var/lib/cloud/seed/nocloud/{meta-data,user-data,vendor-data}). The droplet's
ssh keys travel as meta-data `public-keys`, as the DigitalOcean datasource
passes its `public_keys` (DataSourceDigitalOcean.py:91), never inside user_data.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import yaml

SEED = "/var/lib/cloud/seed/nocloud"
IMAGE_CONFIG = "/etc/cloud/cloud.cfg.d/90-droplet-box.cfg"
FSCK_UNIT = "/usr/lib/systemd/system/systemd-fsck@.service"
FSCK_OVERRIDE = "/etc/systemd/system/systemd-fsck@.service"

# What DigitalOcean's images set for cloud-init, as far as the box needs it.
_IMAGE_CONFIG = """\
# The droplet box's image settings (tests/support/droplet/seed.py).
# The seed directory, never a network datasource: nothing else answers.
datasource_list: [NoCloud, None]
# The lab wires the droplet's network from outside, as DigitalOcean's
# hypervisor does; cloud-init must not rewrite it.
network: {config: disabled}
# ssh root@droplet with the droplet's keys, as on DigitalOcean (Debian's
# default, true, answers root with "Please login as the user debian").
disable_root: false
"""


def image_files(fsck_unit: str) -> dict[str, bytes]:
    """What every droplet's image adds to Debian: cloud-init's settings, and fsck for fstab's
    volume line (see `fsck_without_device`)."""
    return {
        IMAGE_CONFIG: _IMAGE_CONFIG.encode(),
        FSCK_OVERRIDE: fsck_without_device(fsck_unit).encode(),
    }


def fsck_without_device(unit: str) -> str:
    """systemd-fsck@.service without its binding to a device unit.

    A container has no udev, so systemd supports no device units (/sys is
    read-only: src/core/device.c, device_supported()) and starting a unit
    bound to one fails at once: the fstab line bootstrap writes for the
    volume would then never be checked nor mounted at boot, where a droplet
    mounts it. Everything else of the packaged unit stays, so fsck runs.
    """
    binds = re.compile(r"^BindsTo=%i\.device\n", re.MULTILINE)
    after = re.compile(r"^(After=)%i\.device ", re.MULTILINE)
    if not binds.search(unit) or not after.search(unit):
        raise ValueError("systemd-fsck@.service no longer binds to %i.device: revisit the box")
    return after.sub(r"\1", binds.sub("", unit))


def nocloud_seed(
    *, instance_id: str, hostname: str, user_data: bytes, public_keys: Sequence[str]
) -> dict[str, bytes]:
    """The NoCloud seed: user-data exactly as given, vendor-data empty (a droplet's is
    DigitalOcean's own, for its images' agents)."""
    meta_data = {
        "instance-id": instance_id,
        "local-hostname": hostname,
        "public-keys": list(public_keys),
    }
    return {
        f"{SEED}/meta-data": yaml.safe_dump(meta_data, sort_keys=False).encode(),
        f"{SEED}/user-data": user_data,
        f"{SEED}/vendor-data": b"",
    }


def write_layer(upper: Path, lower: Path, files: Mapping[str, bytes]) -> None:
    """Put `files` into an overlay's upper layer. A directory made there takes the lower
    layer's owner and mode, or the merged tree would show ours (/root 0755, say)."""
    for inside, content in files.items():
        target = upper / inside.lstrip("/")
        _make_parents(upper, lower, target.parent)
        target.write_bytes(content)
        target.chmod(0o600 if inside.startswith(SEED) else 0o644)


def _make_parents(upper: Path, lower: Path, directory: Path) -> None:
    missing = []
    while not directory.exists():
        missing.append(directory)
        directory = directory.parent
    for made in reversed(missing):
        made.mkdir()
        twin = lower / made.relative_to(upper)
        if twin.is_dir():
            status = twin.stat()
            os.chown(made, status.st_uid, status.st_gid)
            made.chmod(status.st_mode & 0o7777)
