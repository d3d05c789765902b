"""The droplet's user_data: a #cloud-config that writes files and runs bootstrap.sh.

Two kinds of files land on the VM. The configs rendered from the TOML are
written as readable text, so a plan or `homelab-tunnel render user-data`
shows exactly what changes. The project's fixed files (the top-level
`cloud-init/` folder and the stdlib-only health modules) travel as one
bzip2'd tar: as plain text they would not fit DigitalOcean's 64 KiB user_data
limit. bzip2, not gzip, because its output is the same byte for byte on every
machine, and any change to user_data replaces the droplet.
"""

from __future__ import annotations

import base64
import bz2
import io
import json
import tarfile
import textwrap
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from homelab_tunnel.config import TunnelConfig
from homelab_tunnel.render.caddyfile import render_caddyfile
from homelab_tunnel.render.headscale import render_headscale_config, render_policy

PACKAGE_DIR = Path(__file__).resolve().parent.parent
EDGE_FILES_DIR = PACKAGE_DIR.parent / "cloud-init"
LIB = "/usr/local/lib/homelab-tunnel"
CONF = "/etc/homelab-tunnel"
UNITS = "/etc/systemd/system"
BOOTSTRAP = f"{LIB}/bootstrap.sh"
BUNDLE = f"{LIB}/edge-files.tar.bz2"
# Filled by Terraform from the sensitive variable `health_webhook_url` at
# apply time, so the webhook never appears in the config or cdktf.out.
WEBHOOK_URL_PLACEHOLDER = "@@health_webhook_url@@"

# (file in cloud-init/, path on the edge, mode)
FIXED_FILES: tuple[tuple[str, str, int], ...] = (
    ("bootstrap.sh", BOOTSTRAP, 0o755),
    ("reserved-ip-egress.sh", f"{LIB}/reserved-ip-egress.sh", 0o755),
    ("homelab-tunnel-egress.service", f"{UNITS}/homelab-tunnel-egress.service", 0o644),
    ("homelab-tunnel-health.service", f"{UNITS}/homelab-tunnel-health.service", 0o644),
    ("homelab-tunnel-health.timer", f"{UNITS}/homelab-tunnel-health.timer", 0o644),
    ("state-volume.conf", f"{UNITS}/headscale.service.d/10-state-volume.conf", 0o644),
    ("state-volume.conf", f"{UNITS}/caddy.service.d/10-state-volume.conf", 0o644),
    ("state-volume.conf", f"{UNITS}/tailscaled.service.d/10-state-volume.conf", 0o644),
    (
        "tailscaled-after-headscale.conf",
        f"{UNITS}/tailscaled.service.d/20-after-headscale.conf",
        0o644,
    ),
    ("unattended-upgrades.conf", "/etc/apt/apt.conf.d/52homelab-tunnel-upgrades", 0o644),
)
# The stdlib-only modules the health timer runs as `python3 -m homelab_tunnel.doctor`.
EDGE_MODULES = ("__init__.py", "versions.py", "doctor.py")
# Unpacks the bundle before bootstrap runs; `data` refuses anything outside `/`
# paths we wrote, links and device files.
UNPACK = f"import tarfile; tarfile.open('{BUNDLE}').extractall('/', filter='data')"


@dataclass(frozen=True)
class EdgeFile:
    path: str
    content: str
    mode: int = 0o644


@cache
def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def rendered_files(config: TunnelConfig) -> list[EdgeFile]:
    """Files made from the config: written readable, bootstrap installs them."""
    return [
        EdgeFile(f"{CONF}/edge.env", render_edge_env(config)),
        EdgeFile(f"{CONF}/health.env", render_health_env(config), 0o600),
        EdgeFile(f"{CONF}/Caddyfile", render_caddyfile(config)),
        EdgeFile(f"{CONF}/headscale.yaml", render_headscale_config(config)),
        EdgeFile(f"{CONF}/policy.hujson", render_policy(config)),
    ]


def fixed_files() -> list[EdgeFile]:
    """The project's own files for the edge, the same for every config."""
    files = [
        EdgeFile(target, _read(EDGE_FILES_DIR / name), mode) for name, target, mode in FIXED_FILES
    ]
    files += [
        EdgeFile(f"{LIB}/homelab_tunnel/{name}", _read(PACKAGE_DIR / name)) for name in EDGE_MODULES
    ]
    return files


def edge_files(config: TunnelConfig) -> list[EdgeFile]:
    """Everything that is on the VM before bootstrap.sh starts."""
    return rendered_files(config) + fixed_files()


def render_edge_env(config: TunnelConfig) -> str:
    values = {
        "EDGE_NAME": config.name,
        "STATE_VOLUME": config.volume_name,
        "HEADSCALE_VERSION": config.headscale.version,
        "HEADSCALE_DEB_SHA256": config.headscale.deb_sha256 or "",
        "EGRESS_VIA_RESERVED_IP": "true" if config.egress_via_reserved_ip else "false",
    }
    return "# Read by bootstrap.sh; written by homelab-tunnel.\n" + _env_lines(values)


def render_health_env(config: TunnelConfig) -> str:
    values = {
        "HEALTH_UPSTREAMS": " ".join(config.upstream_hosts),
        "HEALTH_WEBHOOK_URL": WEBHOOK_URL_PLACEHOLDER,
        "HEADSCALE_VERSION": config.headscale.version,
    }
    return "# Read by homelab-tunnel-health.service; written by homelab-tunnel.\n" + _env_lines(
        values
    )


def render_user_data(config: TunnelConfig) -> str:
    lines = [
        "#cloud-config",
        f"# homelab-tunnel edge {config.name}: files first, then bootstrap.sh does the rest.",
        "# Progress and the final 'edge ready' line: /var/log/cloud-init-output.log",
        f"hostname: {config.name}",
        "preserve_hostname: false",
        "write_files:",
    ]
    for file in rendered_files(config):
        lines += _text_entry(file)
    lines += [
        f"  # {', '.join(sorted(Path(f.path).name for f in fixed_files()))}",
        f"  - path: {BUNDLE}",
        '    permissions: "0644"',
        "    encoding: b64",
        "    content: |",
        *textwrap.wrap(
            base64.b64encode(bundle()).decode(),
            76,
            initial_indent="      ",
            subsequent_indent="      ",
        ),
        "runcmd:",
        f"  - [python3, -c, {json.dumps(UNPACK)}]",
        f"  - [{BOOTSTRAP}]",
        "",
    ]
    return "\n".join(lines)


@cache
def bundle() -> bytes:
    """The fixed files as a tar with every header field fixed, bzip2'd."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for file in fixed_files():
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


def _env_lines(values: dict[str, str]) -> str:
    return "".join(f"{key}={value}\n" for key, value in values.items())
