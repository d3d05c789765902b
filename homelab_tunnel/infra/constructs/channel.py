"""The config channel: a private bucket, the edge's read-only key, and the objects it reads.

The config object holds everything a user changes day to day (render/edge_config.py);
Terraform updates it in place and the edge applies it without a new droplet.
The software object holds the edge's programs, named by their SHA-256, which
user_data pins: a new software version is a new droplet, by design.
"""

from __future__ import annotations

from cdktf import Fn, ITerraformDependable
from cdktf_cdktf_provider_digitalocean.spaces_bucket import SpacesBucket
from cdktf_cdktf_provider_digitalocean.spaces_bucket_object import SpacesBucketObject
from cdktf_cdktf_provider_digitalocean.spaces_key import SpacesKey, SpacesKeyGrant
from constructs import Construct

from homelab_tunnel.edge.channel import PURPOSE
from homelab_tunnel.edge.derive import label


def config_mac_expression(secret: str, body_sha256: str, webhook: str) -> str:
    """edge/channel.py's `mac`, in HCL: the object's MAC from the edge secret (a reference)."""
    key = Fn.sha256(Fn.join("", [label(PURPOSE), secret]))
    return Fn.sha256(Fn.join(":", [key, Fn.sha256(Fn.join(":", [key, body_sha256, webhook]))]))


class EdgeChannel(Construct):
    """The config bucket, the key that can only read it, the software, then (`publish`) the config.

    The config object waits for the edge secret, whose key needs the bucket to
    exist first: the stack makes the secret in between.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        name: str,
        bucket: str,
        region: str,
        software_key: str,
        software_base64: str,
    ) -> None:
        super().__init__(scope, id_)
        self.region = region
        # Not versioned: nothing in it is the only copy (Terraform writes it all again
        # from the config), and no earlier version, MAC included, stays readable.
        self.bucket = SpacesBucket(self, "bucket", name=bucket, region=region, acl="private")
        self.bucket.override_logical_id("config")
        # read: the edge can neither rewrite what it serves nor see other buckets.
        self.key = SpacesKey(
            self,
            "key",
            name=f"{name}-config",
            grant=[SpacesKeyGrant(bucket=self.bucket.name, permission="read")],
        )
        self.key.override_logical_id("config")
        self.software = SpacesBucketObject(
            self,
            "software",
            bucket=self.bucket.name,
            region=region,
            key=software_key,
            acl="private",
            content_base64=software_base64,
            content_type="application/x-bzip2",
        )
        self.software.override_logical_id("software")

    def publish(
        self,
        *,
        key: str,
        body: str,
        mac: str,
        webhook: str,
        after: list[ITerraformDependable],
    ) -> SpacesBucketObject:
        """The config object. `after`: the DNS records, so a new name resolves before the
        config that serves it reaches the edge, which then asks for its certificate."""
        self.config = SpacesBucketObject(
            self,
            "config",
            bucket=self.bucket.name,
            region=self.region,
            key=key,
            acl="private",
            content=body,
            content_type="application/json",
            metadata={"mac": mac, "webhook": webhook},
            depends_on=after,
        )
        self.config.override_logical_id("config")
        return self.config
