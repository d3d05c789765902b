"""The edge's fixed files (its software), read once from package data; user_data and the bundle.

render/ stays pure by taking these files as input; this is the one place that
reads them, through importlib.resources, so an installed wheel works exactly
like a checkout.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from functools import cache
from importlib.resources import files
from importlib.resources.abc import Traversable

from homelab_tunnel.config import TunnelConfig
from homelab_tunnel.crawlers import ai_crawlers
from homelab_tunnel.errors import InputError
from homelab_tunnel.render.compact import compact_for
from homelab_tunnel.render.edge_config import render_edge_config
from homelab_tunnel.render.secrets import longest_size
from homelab_tunnel.render.user_data import (
    BOOTSTRAP,
    LIB,
    METADATA_GUARD,
    UNITS,
    EdgeFile,
    edge_config_key,
    render_user_data,
    rendered_files,
    software_bundle,
    software_key,
    software_sha256,
)

# DigitalOcean refuses a droplet whose user_data is larger than 64 KiB, and
# only at apply time, after the reserved IP, the records and the volume exist.
USER_DATA_LIMIT = 64 * 1024

# bootstrap.sh's steps, in order: edge/files/steps/order, read once here.
BOOTSTRAP_STEPS = tuple(
    line
    for line in (files("homelab_tunnel") / "edge" / "files" / "steps" / "order")
    .read_text(encoding="utf-8")
    .splitlines()
    if line and not line.startswith("#")
)

# (file in homelab_tunnel/edge/files, path on the edge, mode)
FIXED_FILES: tuple[tuple[str, str, int], ...] = (
    ("bootstrap.sh", BOOTSTRAP, 0o755),
    ("helpers.sh", f"{LIB}/helpers.sh", 0o644),
    ("join-edge.sh", f"{LIB}/join-edge.sh", 0o755),
    ("mint-preauth-key.sh", f"{LIB}/mint-preauth-key.sh", 0o755),
    ("reserved-ip-egress.sh", f"{LIB}/reserved-ip-egress.sh", 0o755),
    ("metadata-guard.sh", METADATA_GUARD, 0o755),
    ("restore-state.sh", f"{LIB}/restore-state.sh", 0o755),
    ("homelab-tunnel-bootstrap.service", f"{UNITS}/homelab-tunnel-bootstrap.service", 0o644),
    ("homelab-tunnel-egress.service", f"{UNITS}/homelab-tunnel-egress.service", 0o644),
    ("homelab-tunnel-health.service", f"{UNITS}/homelab-tunnel-health.service", 0o644),
    ("homelab-tunnel-health.timer", f"{UNITS}/homelab-tunnel-health.timer", 0o644),
    ("homelab-tunnel-litestream.service", f"{UNITS}/homelab-tunnel-litestream.service", 0o644),
    ("homelab-tunnel-config.service", f"{UNITS}/homelab-tunnel-config.service", 0o644),
    ("homelab-tunnel-metrics.service", f"{UNITS}/homelab-tunnel-metrics.service", 0o644),
    ("homelab-tunnel-ports.service", f"{UNITS}/homelab-tunnel-ports.service", 0o644),
    ("state-volume.list", f"{LIB}/state-volume.list", 0o644),
    ("steps/order", f"{LIB}/steps/order", 0o644),
    *((f"steps/{step}.sh", f"{LIB}/steps/{step}.sh", 0o644) for step in BOOTSTRAP_STEPS),
    *(
        (f"homelab-tunnel-backup-keys.{kind}", f"{UNITS}/homelab-tunnel-backup-keys.{kind}", 0o644)
        for kind in ("service", "path", "timer")
    ),
    *(
        (f"homelab-tunnel-seal.{kind}", f"{UNITS}/homelab-tunnel-seal.{kind}", 0o644)
        for kind in ("service", "timer")
    ),
    ("state-volume.conf", f"{UNITS}/headscale.service.d/10-state-volume.conf", 0o644),
    (
        "headscale-not-mid-restore.conf",
        f"{UNITS}/headscale.service.d/30-not-mid-restore.conf",
        0o644,
    ),
    (
        "headscale-stop-timeout.conf",
        f"{UNITS}/headscale.service.d/40-stop-timeout.conf",
        0o644,
    ),
    ("state-volume.conf", f"{UNITS}/caddy.service.d/10-state-volume.conf", 0o644),
    ("state-volume.conf", f"{UNITS}/tailscaled.service.d/10-state-volume.conf", 0o644),
    (
        "tailscaled-after-headscale.conf",
        f"{UNITS}/tailscaled.service.d/20-after-headscale.conf",
        0o644,
    ),
    ("unattended-upgrades.conf", "/etc/apt/apt.conf.d/52homelab-tunnel-upgrades", 0o644),
)
# The health agent's modules: the edge package and the one shared module it uses.
SHARED_MODULES = ("__init__.py", "findings.py")


def _package() -> Traversable:
    return files("homelab_tunnel")


@cache
def fixed_files() -> tuple[EdgeFile, ...]:
    """The project's own files for the edge, the same for every config, as they ship."""
    package = _package()
    edge_files = package / "edge" / "files"
    sources = [(target, edge_files / name, mode) for name, target, mode in FIXED_FILES]
    sources += [(f"{LIB}/homelab_tunnel/{name}", package / name, 0o644) for name in SHARED_MODULES]
    modules = sorted(
        entry.name for entry in (package / "edge").iterdir() if entry.name.endswith(".py")
    )
    sources += [
        (f"{LIB}/homelab_tunnel/edge/{name}", package / "edge" / name, 0o644) for name in modules
    ]
    return tuple(
        EdgeFile(target, compact_for(target, source.read_text(encoding="utf-8")), mode)
        for target, source, mode in sources
    )


def user_data(config: TunnelConfig) -> str:
    """The droplet's user_data for `config`: first-boot files and the software loader."""
    return render_user_data(config, fixed_files())


def first_boot_files(config: TunnelConfig) -> list[EdgeFile]:
    """The files user_data writes from the config, as this version's software pins them."""
    return rendered_files(config, software_sha256(fixed_files()))


@cache
def software() -> bytes:
    """The software bundle Terraform puts in the config bucket, the same for every config."""
    return software_bundle(fixed_files())


@dataclass(frozen=True)
class EdgeConfigObject:
    """The config object as Terraform writes it (its MAC is Terraform's, from the edge secret)."""

    key: str
    body: str
    sha256: str
    version: str


@dataclass(frozen=True)
class SoftwareObject:
    key: str
    base64: str = field(repr=False)


def edge_config_object(config: TunnelConfig) -> EdgeConfigObject:
    """The config object for `config`, with the pinned AI crawler list."""
    body = render_edge_config(config, ai_crawlers())
    return EdgeConfigObject(
        edge_config_key(config),
        body,
        hashlib.sha256(body.encode()).hexdigest(),
        str(json.loads(body)["version"]),
    )


def software_object(config: TunnelConfig) -> SoftwareObject:
    data = software()
    return SoftwareObject(
        software_key(config, hashlib.sha256(data).hexdigest()), base64.b64encode(data).decode()
    )


def user_data_size(config: TunnelConfig) -> int:
    """The size in bytes of the user_data the droplet will get, at most.

    Terraform replaces each secret's placeholder at plan time with a value of
    unknown length here; each is bounded (render/secrets.py), so the size
    counts the longest and holds for any value Terraform accepts.
    """
    return longest_size(user_data(config))


def checked_user_data_size(config: TunnelConfig, source: str) -> int:
    """`user_data_size`, or `InputError` when DigitalOcean would refuse it."""
    size = user_data_size(config)
    if size > USER_DATA_LIMIT:
        raise InputError(
            source,
            [
                f"headscale.derp_urls: the droplet's user_data would be {size} bytes, over "
                f"DigitalOcean's limit of {USER_DATA_LIMIT} bytes; list fewer DERP maps "
                "(and tls.ca_roots), the only inputs whose size reaches user_data"
            ],
        )
    return size
