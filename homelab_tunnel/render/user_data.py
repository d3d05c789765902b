"""The droplet's user_data: only what a first boot needs, and it changes only with the software.

A #cloud-config that closes the metadata service (bootcmd), writes the edge's
first-boot settings (edge.env, where the config bucket is and the key to read
it, the edge secret, Headscale's server config, the backup settings) and a
small loader, then starts the bootstrap unit. The unit first fetches the
edge's software from the config bucket, checked against the SHA-256 written
here, then runs bootstrap.sh. Sites, policy and health settings are not here:
they travel in the config object (render/edge_config.py) and reach a running
edge in place. So adding a site never replaces the droplet, and user_data
stays far below DigitalOcean's 64 KiB whatever the number of sites.

The tars are built with every header field fixed and compressed with bzip2,
whose output is the same byte for byte on every machine: any change to
user_data replaces the droplet.
"""

from __future__ import annotations

import base64
import bz2
import hashlib
import io
import json
import tarfile
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

from homelab_tunnel.config import TunnelConfig
from homelab_tunnel.render.backup import (
    render_backup_env,
    render_litestream_config,
    spaces_endpoint,
)
from homelab_tunnel.render.caddyfile import CA_ROOTS_PATH
from homelab_tunnel.render.edge_env import render_channel_env, render_edge_env
from homelab_tunnel.render.headscale import render_headscale_config
from homelab_tunnel.render.secrets import EDGE_SECRET

LIB = "/usr/local/lib/homelab-tunnel"
CONF = "/etc/homelab-tunnel"
UNITS = "/etc/systemd/system"
BOOTSTRAP = f"{LIB}/bootstrap.sh"
LOADER = f"{LIB}/loader.tar.bz2"
BOOTSTRAP_UNIT = "homelab-tunnel-bootstrap.service"
METADATA_GUARD = f"{LIB}/metadata-guard.sh"
EDGE_SECRET_PATH = f"{CONF}/edge-secret"
MODULES = f"{LIB}/homelab_tunnel"
# What the bootstrap unit needs before the software is there: the unit itself,
# and the modules that download the software from the bucket and check it.
LOADER_PATHS = (
    f"{UNITS}/{BOOTSTRAP_UNIT}",
    f"{MODULES}/__init__.py",
    f"{MODULES}/findings.py",
    f"{MODULES}/edge/__init__.py",
    f"{MODULES}/edge/envfile.py",
    f"{MODULES}/edge/s3.py",
    f"{MODULES}/edge/software.py",
)
# Unpacks the loader; `data` refuses anything outside `/` paths we wrote, links
# and device files.
UNPACK = f"import tarfile; tarfile.open('{LOADER}').extractall('/', filter='data')"
# Runs the first attempt (systemd retries a failed one by itself) and copies
# its lines into cloud-init's log, which then ends with "edge ready" or "FAILED".
FIRST_BOOT = (
    f"systemctl start {BOOTSTRAP_UNIT}; journalctl -b -u {BOOTSTRAP_UNIT} -o cat --no-pager"
)


@dataclass(frozen=True)
class EdgeFile:
    path: str
    content: str
    mode: int = 0o644


def software_key(config: TunnelConfig, sha256: str) -> str:
    """The software's object in the config bucket, named by its content."""
    return f"{config.name}/software/{sha256}.tar.bz2"


def edge_config_key(config: TunnelConfig) -> str:
    """The config object in the config bucket."""
    return f"{config.name}/edge-config.json"


def rendered_files(config: TunnelConfig, software_sha256: str) -> list[EdgeFile]:
    """Files made from the config that a first boot needs: written readable."""
    channel = render_channel_env(
        endpoint=spaces_endpoint(config.channel_region),
        region=config.channel_region,
        bucket=config.channel_bucket,
        key=edge_config_key(config),
        software_key=software_key(config, software_sha256),
    )
    files = [
        EdgeFile(f"{CONF}/edge.env", render_edge_env(config, software_sha256)),
        EdgeFile(f"{CONF}/channel.env", channel, 0o600),
        EdgeFile(EDGE_SECRET_PATH, EDGE_SECRET.placeholder + "\n", 0o600),
        EdgeFile(f"{CONF}/headscale.yaml", render_headscale_config(config)),
    ]
    if config.tls.ca_roots:
        files.append(EdgeFile(CA_ROOTS_PATH, config.tls.ca_roots))
    if config.backup.enabled:
        files.append(EdgeFile(f"{CONF}/backup.env", render_backup_env(config), 0o600))
        # Litestream's config holds the bucket's key pair literally: root's only.
        files.append(EdgeFile(f"{CONF}/litestream.yml", render_litestream_config(config), 0o600))
    return files


def software_bundle(software: Sequence[EdgeFile]) -> bytes:
    """The edge's software as the config bucket holds it."""
    return bundle(software)


def software_sha256(software: Sequence[EdgeFile]) -> str:
    return hashlib.sha256(software_bundle(software)).hexdigest()


def render_user_data(config: TunnelConfig, software: Sequence[EdgeFile]) -> str:
    """The #cloud-config document; `software` is every fixed file of the edge (see `payload`).

    bootcmd runs first on every boot, before write_files: it closes the metadata
    service, which serves this very document to any local process, to everyone
    but root (metadata-guard.sh, the same text the software carries for bootstrap).
    """
    guard = next(file for file in software if file.path == METADATA_GUARD)
    loader = [file for file in software if file.path in LOADER_PATHS]
    lines = [
        "#cloud-config",
        f"# homelab-tunnel edge {config.name}: first-boot files, then bootstrap does the rest.",
        "# Progress and the final 'edge ready' line: /var/log/cloud-init-output.log",
        f"hostname: {config.name}",
        "preserve_hostname: false",
        "bootcmd:",
        f"  - [sh, -c, {json.dumps(guard.content)}]",
        "write_files:",
    ]
    for file in rendered_files(config, software_sha256(software)):
        lines += _text_entry(file)
    lines += [
        f"  # {', '.join(sorted(PurePosixPath(f.path).name for f in loader))}",
        f"  - path: {LOADER}",
        '    permissions: "0644"',
        "    encoding: b64",
        "    content: |",
        *textwrap.wrap(
            base64.b64encode(bundle(loader)).decode(),
            76,
            initial_indent="      ",
            subsequent_indent="      ",
        ),
        "runcmd:",
        f"  - [python3, -c, {json.dumps(UNPACK)}]",
        "  - [systemctl, daemon-reload]",
        f"  - [systemctl, enable, {BOOTSTRAP_UNIT}]",
        f"  - [sh, -c, {json.dumps(FIRST_BOOT)}]",
        "",
    ]
    return "\n".join(lines)


def bundle(files: Sequence[EdgeFile]) -> bytes:
    """`files` as a tar with every header field fixed, bzip2'd."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for file in files:
            data = file.content.encode()
            info = tarfile.TarInfo(file.path.lstrip("/"))
            info.size = len(data)
            info.mode = file.mode
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            tar.addfile(info, io.BytesIO(data))
    return bz2.compress(buffer.getvalue(), compresslevel=9)


def _text_entry(file: EdgeFile) -> list[str]:
    """A write_files item with the content as a literal block."""
    entry = [f"  - path: {file.path}", f'    permissions: "{file.mode:04o}"']
    entry.append(f"    content: {_block_indicator(file.content)}")
    entry += [f"      {line}" if line else "" for line in file.content.splitlines()]
    return entry


def _block_indicator(content: str) -> str:
    first = next((line for line in content.splitlines() if line.strip()), "")
    indent = "2" if first.startswith(" ") else ""
    if content.endswith("\n\n"):
        chomp = "+"
    elif content.endswith("\n"):
        chomp = ""
    else:
        chomp = "-"
    return f"|{indent}{chomp}"
