"""The backup's files on the edge: backup.env, Litestream's config and the edge secret.

The bucket's key pair is not in the config: Terraform fills the placeholders
from the scoped digitalocean_spaces_key at plan time (sensitive), as it does
for the health webhook. All three files are 0600 root: only root programs
read them (Litestream runs as root for that reason, see its unit).
"""

from __future__ import annotations

from homelab_tunnel.config import TunnelConfig
from homelab_tunnel.edge.upgrade_guard import DATABASE as DATABASE_NAME
from homelab_tunnel.edge.upgrade_guard import STATE_DIR
from homelab_tunnel.render.secrets import BACKUP_ACCESS_KEY, BACKUP_SECRET_KEY

DATABASE = str(STATE_DIR / DATABASE_NAME)
# Litestream's Prometheus metrics, loopback only: the edge's exporter passes them on.
LITESTREAM_METRICS = "127.0.0.1:9091"


def spaces_endpoint(region: str) -> str:
    return f"https://{region}.digitaloceanspaces.com"


def render_backup_env(config: TunnelConfig) -> str:
    backup = config.backup
    assert backup.region is not None  # validated: required when enabled
    values = {
        "BACKUP_BUCKET": config.backup_bucket,
        "BACKUP_REGION": backup.region,
        "BACKUP_ENDPOINT": spaces_endpoint(backup.region),
        "BACKUP_PREFIX": config.name,
        "BACKUP_RETENTION_DAYS": str(backup.retention_days),
        "BACKUP_RECIPIENTS": " ".join(backup.recipients),
        "BACKUP_ACCESS_KEY_ID": BACKUP_ACCESS_KEY.placeholder,
        "BACKUP_SECRET_ACCESS_KEY": BACKUP_SECRET_KEY.placeholder,
    }
    return (
        "# Read by the backup and restore steps (edge/envfile.py); written by homelab-tunnel.\n"
        "# The key pair comes from Terraform (digitalocean_spaces_key.backup), never the config.\n"
        + "".join(f"{key}={value}\n" for key, value in values.items())
    )


def render_litestream_config(config: TunnelConfig) -> str:
    """Litestream 0.5: one replica, the key pair written in (read with -no-expand-env).

    Spaces secrets are base64 ([A-Za-z0-9+/=]): literal inside YAML double quotes.
    """
    backup = config.backup
    assert backup.region is not None
    hours = backup.retention_days * 24
    return f"""\
# Litestream on the {config.name} edge, written by homelab-tunnel: Headscale's
# database, sent to the backup bucket within a second of each write.
addr: {LITESTREAM_METRICS}
dbs:
  - path: {DATABASE}
    replica:
      type: s3
      bucket: {config.backup_bucket}
      path: {config.name}/db
      endpoint: {spaces_endpoint(backup.region)}
      region: {backup.region}
      # Filled in by Terraform; this file is 0600 root, as Litestream runs.
      access-key-id: "{BACKUP_ACCESS_KEY.placeholder}"
      secret-access-key: "{BACKUP_SECRET_KEY.placeholder}"
      sync-interval: 1s
# How far back a restore can go: backup.retention_days.
snapshot:
  interval: 24h
  retention: {hours}h
"""
