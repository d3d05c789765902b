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

# Filled by Terraform from the sensitive variable `health_webhook_url` at
# apply time, so the webhook never appears in the config or cdktf.out.
WEBHOOK_URL_PLACEHOLDER = "@@health_webhook_url@@"
# What Terraform lets into that place (its validation of the variable, in
# infra/stacks/edge.py): https, at most this long, of URL characters that are
# literal in health.env for systemd: no blanks, quotes, backslashes, '$' or
# backticks. The length bound also lets `check` know user_data's final size.
WEBHOOK_URL_MAX_LENGTH = 512
WEBHOOK_URL_CHARACTERS = "A-Za-z0-9._~:/?#@!&*+,;=%-"


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
        "HEALTH_WEBHOOK_URL": WEBHOOK_URL_PLACEHOLDER,
        "HEADSCALE_VERSION": config.headscale.version,
        "BACKUP_ENABLED": "true" if config.backup.enabled else "false",
    }
    return "# Read by homelab-tunnel-health.service; written by homelab-tunnel.\n" + _env_lines(
        values
    )


def _env_lines(values: dict[str, str]) -> str:
    return "".join(f"{key}={value}\n" for key, value in values.items())
