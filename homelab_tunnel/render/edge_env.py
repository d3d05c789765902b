"""The env files the edge reads: plain KEY=value lines.

bash sources edge.env, so its values are limited by config validation to
shapes without blanks or shell syntax (names, versions, hex). systemd reads
health.env (EnvironmentFile=), where blanks inside a value are literal but
quotes and backslashes are syntax: its values are host names and a version.
channel.env is read by the edge's own parser (edge/envfile.py); its key pair
comes from Terraform.
"""

from __future__ import annotations

from homelab_tunnel.config import TunnelConfig
from homelab_tunnel.edge.versions import LITESTREAM_VERSION
from homelab_tunnel.render.backup import LITESTREAM_METRICS
from homelab_tunnel.render.headscale import HEADSCALE_METRICS
from homelab_tunnel.render.secrets import CHANNEL_ACCESS_KEY, CHANNEL_SECRET_KEY

# Caddy's admin endpoint: its default listener, which the Caddyfile leaves as it is.
CADDY_METRICS = "127.0.0.1:2019"


def render_edge_env(config: TunnelConfig, software_sha256: str) -> str:
    values = {
        "EDGE_NAME": config.name,
        "STATE_VOLUME": config.volume_name,
        "HEADSCALE_VERSION": config.headscale.version,
        "HEADSCALE_DEB_SHA256": config.headscale.deb_sha256 or "",
        "EGRESS_VIA_RESERVED_IP": "true" if config.egress_via_reserved_ip else "false",
        "BACKUP_ENABLED": "true" if config.backup.enabled else "false",
        "LITESTREAM_VERSION": LITESTREAM_VERSION,
        "SOFTWARE_SHA256": software_sha256,
    }
    return "# Read by bootstrap.sh; written by homelab-tunnel.\n" + _env_lines(values)


def render_channel_env(
    *, endpoint: str, region: str, bucket: str, key: str, software_key: str
) -> str:
    """Where the config object and the software are, and the read-only key to fetch them."""
    values = {
        "CHANNEL_ENDPOINT": endpoint,
        "CHANNEL_REGION": region,
        "CHANNEL_BUCKET": bucket,
        "CHANNEL_KEY": key,
        "CHANNEL_SOFTWARE_KEY": software_key,
        "CHANNEL_ACCESS_KEY_ID": CHANNEL_ACCESS_KEY.placeholder,
        "CHANNEL_SECRET_ACCESS_KEY": CHANNEL_SECRET_KEY.placeholder,
    }
    return (
        "# The config bucket: read by the edge's config agent and software loader.\n"
        "# The key pair comes from Terraform (digitalocean_spaces_key.config: read only).\n"
        + _env_lines(values)
    )


def render_health_env(config: TunnelConfig) -> str:
    values = {
        "HEALTH_UPSTREAMS": " ".join(config.upstream_hosts),
        "HEADSCALE_VERSION": config.headscale.version,
        "BACKUP_ENABLED": "true" if config.backup.enabled else "false",
    }
    return (
        "# Read by homelab-tunnel-health.service; written by homelab-tunnel.\n"
        "# The webhook URL is in health-webhook.env, from the config object's metadata.\n"
        + _env_lines(values)
    )


def render_metrics_env(config: TunnelConfig) -> str:
    """Who may scrape the edge and where its sources answer: the exporter's and `status`'s."""
    values = {
        "METRICS_PORT": str(config.metrics.port),
        "METRICS_SCRAPERS": " ".join(config.metrics.scrapers),
        "CADDY_METRICS_URL": f"http://{CADDY_METRICS}/metrics",
        "HEADSCALE_METRICS_URL": f"http://{HEADSCALE_METRICS}/metrics",
        "LITESTREAM_METRICS_URL": (
            f"http://{LITESTREAM_METRICS}/metrics" if config.backup.enabled else ""
        ),
    }
    return (
        "# Read by homelab-tunnel-metrics.service and `homelab-tunnel status`; written by\n"
        "# homelab-tunnel. No scrapers: no endpoint.\n" + _env_lines(values)
    )


def _env_lines(values: dict[str, str]) -> str:
    return "".join(f"{key}={value}\n" for key, value in values.items())
