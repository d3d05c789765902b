"""Terraform's side of the config channel, for tests and the lab: the objects, as it writes them.

The MAC is edge/channel.py's `mac`, which tests/infra/test_channel_mac.py
proves equal to the HCL the stack gives Terraform (evaluated by the real
`terraform console`), so what is published here is what a real apply writes.
"""

from __future__ import annotations

from typing import Any

from homelab_tunnel.config import TunnelConfig
from homelab_tunnel.edge.channel import PURPOSE, mac
from homelab_tunnel.edge.derive import derived_key
from homelab_tunnel.payload import edge_config_object, software, software_object

EDGE_SECRET = "lab-edge-secret-0123456789abcdefghijklmnopqrstu"


def config_metadata(body: str, *, secret: str, webhook: str) -> dict[str, str]:
    """The object's metadata as Terraform fills it: the MAC and the webhook."""
    return {"mac": mac(derived_key(secret, PURPOSE), body.encode(), webhook), "webhook": webhook}


def publish_config(
    client: Any, bucket: str, config: TunnelConfig, *, secret: str = EDGE_SECRET, webhook: str = ""
) -> str:
    """Write the config object as `terraform apply` would; its version."""
    edge_config = edge_config_object(config)
    client.put_object(
        Bucket=bucket,
        Key=edge_config.key,
        Body=edge_config.body.encode(),
        ContentType="application/json",
        Metadata=config_metadata(edge_config.body, secret=secret, webhook=webhook),
    )
    return edge_config.version


def publish_software(client: Any, bucket: str, config: TunnelConfig) -> str:
    """Write the software bundle where user_data's loader looks for it; its key."""
    key = software_object(config).key
    client.put_object(Bucket=bucket, Key=key, Body=software(), ContentType="application/x-bzip2")
    return key


def channel_env(
    config: TunnelConfig,
    *,
    endpoint: str,
    region: str,
    bucket: str,
    access_key: str,
    secret_key: str,
) -> dict[str, str]:
    """channel.env's values for a bucket on a test S3 (what Terraform fills, pointed there)."""
    return {
        "CHANNEL_ENDPOINT": endpoint,
        "CHANNEL_REGION": region,
        "CHANNEL_BUCKET": bucket,
        "CHANNEL_KEY": edge_config_object(config).key,
        "CHANNEL_SOFTWARE_KEY": software_object(config).key,
        "CHANNEL_ACCESS_KEY_ID": access_key,
        "CHANNEL_SECRET_ACCESS_KEY": secret_key,
    }
