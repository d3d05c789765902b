"""The env files bootstrap.sh and the health unit read: plain KEY=value lines.

bash sources edge.env, so its values are limited by config validation to
shapes without blanks or shell syntax (names, versions, hex). systemd reads
health.env (EnvironmentFile=), where blanks inside a value are literal but
quotes and backslashes are syntax: its values are host names, a version and
the webhook URL, whose Terraform validation refuses those characters.
"""

from __future__ import annotations

from homelab_tunnel.config import TunnelConfig
from homelab_tunnel.edge.versions import LITESTREAM_VERSION
from homelab_tunnel.render.secrets import WEBHOOK_URL


def render_edge_env(config: TunnelConfig) -> str:
    values = {
        "EDGE_NAME": config.name,
        "STATE_VOLUME": config.volume_name,
        "HEADSCALE_VERSION": config.headscale.version,
        "HEADSCALE_DEB_SHA256": config.headscale.deb_sha256 or "",
        "EGRESS_VIA_RESERVED_IP": "true" if config.egress_via_reserved_ip else "false",
        "BACKUP_ENABLED": "true" if config.backup.enabled else "false",
        "LITESTREAM_VERSION": LITESTREAM_VERSION,
    }
    return "# Read by bootstrap.sh; written by homelab-tunnel.\n" + _env_lines(values)


def render_health_env(config: TunnelConfig) -> str:
    values = {
        "HEALTH_UPSTREAMS": " ".join(config.upstream_hosts),
        "HEALTH_WEBHOOK_URL": WEBHOOK_URL.placeholder,
        "HEADSCALE_VERSION": config.headscale.version,
        "BACKUP_ENABLED": "true" if config.backup.enabled else "false",
    }
    return "# Read by homelab-tunnel-health.service; written by homelab-tunnel.\n" + _env_lines(
        values
    )


def _env_lines(values: dict[str, str]) -> str:
    return "".join(f"{key}={value}\n" for key, value in values.items())
