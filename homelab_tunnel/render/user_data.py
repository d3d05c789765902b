"""The droplet's user_data: a #cloud-config that writes files and runs bootstrap.sh.

Two kinds of files land on the VM. The configs rendered from the TOML are
written as readable text, so a plan or `homelab-tunnel render user-data`
shows exactly what changes. The project's fixed files (edge/files/ and the
stdlib-only edge modules) are passed in and travel as one bzip2'd tar: as
plain text they would not fit DigitalOcean's 64 KiB user_data limit. bzip2,
not gzip, because its output is the same byte for byte on every machine, and
any change to user_data replaces the droplet.
"""

from __future__ import annotations

import base64
import bz2
import io
import json
import tarfile
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

from homelab_tunnel.config import TunnelConfig
from homelab_tunnel.render.backup import render_backup_env, render_litestream_config
from homelab_tunnel.render.caddyfile import CA_ROOTS_PATH, render_caddyfile
from homelab_tunnel.render.crawlers import AiCrawlers
from homelab_tunnel.render.edge_env import render_edge_env, render_health_env
from homelab_tunnel.render.headscale import render_headscale_config
from homelab_tunnel.render.policy import render_policy

LIB = "/usr/local/lib/homelab-tunnel"
CONF = "/etc/homelab-tunnel"
UNITS = "/etc/systemd/system"
BOOTSTRAP = f"{LIB}/bootstrap.sh"
BUNDLE = f"{LIB}/edge-files.tar.bz2"
BOOTSTRAP_UNIT = "homelab-tunnel-bootstrap.service"
# Unpacks the bundle before bootstrap runs; `data` refuses anything outside `/`
# paths we wrote, links and device files.
UNPACK = f"import tarfile; tarfile.open('{BUNDLE}').extractall('/', filter='data')"
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


def rendered_files(config: TunnelConfig, crawlers: AiCrawlers) -> list[EdgeFile]:
    """Files made from the config (and the AI crawler list the Caddyfile may need):
    written readable, bootstrap installs them."""
    files = [
        EdgeFile(f"{CONF}/edge.env", render_edge_env(config)),
        EdgeFile(f"{CONF}/health.env", render_health_env(config), 0o600),
        EdgeFile(f"{CONF}/Caddyfile", render_caddyfile(config, crawlers)),
        EdgeFile(f"{CONF}/headscale.yaml", render_headscale_config(config)),
        EdgeFile(f"{CONF}/policy.hujson", render_policy(config)),
    ]
    if config.tls.ca_roots:
        files.append(EdgeFile(CA_ROOTS_PATH, config.tls.ca_roots))
    if config.backup.enabled:
        files.append(EdgeFile(f"{CONF}/backup.env", render_backup_env(config), 0o600))
        files.append(EdgeFile(f"{CONF}/litestream.yml", render_litestream_config(config)))
    return files


def render_user_data(config: TunnelConfig, fixed: Sequence[EdgeFile], crawlers: AiCrawlers) -> str:
    """The #cloud-config document; `fixed` is the bundle's content and `crawlers` the AI
    crawler list (see `payload`)."""
    lines = [
        "#cloud-config",
        f"# homelab-tunnel edge {config.name}: files first, then bootstrap.sh does the rest.",
        "# Progress and the final 'edge ready' line: /var/log/cloud-init-output.log",
        f"hostname: {config.name}",
        "preserve_hostname: false",
        "write_files:",
    ]
    for file in rendered_files(config, crawlers):
        lines += _text_entry(file)
    lines += [
        f"  # {', '.join(sorted(PurePosixPath(f.path).name for f in fixed))}",
        f"  - path: {BUNDLE}",
        '    permissions: "0644"',
        "    encoding: b64",
        "    content: |",
        *textwrap.wrap(
            base64.b64encode(bundle(fixed)).decode(),
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
    """The fixed files as a tar with every header field fixed, bzip2'd."""
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
