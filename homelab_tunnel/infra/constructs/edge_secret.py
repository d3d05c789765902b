"""The edge's own secret: a random value that is no bucket's credential.

The only provider the stack may use is DigitalOcean's (no `random`, no
`tls`), so the randomness comes from DigitalOcean: a Spaces key made only for
its secret half (sensitive, kept in the Terraform state). Only that secret
reaches the edge, which derives its age identity and its MAC keys from it;
the key is never used to access anything. A key needs a grant: `read` on the
bucket it is given, the least there is.
"""

from __future__ import annotations

from cdktf_cdktf_provider_digitalocean.spaces_bucket import SpacesBucket
from cdktf_cdktf_provider_digitalocean.spaces_key import SpacesKey, SpacesKeyGrant
from constructs import Construct


class EdgeSecret(Construct):
    """`<name>-edge-secret`: its `secret` goes into user_data, nothing else of it."""

    def __init__(self, scope: Construct, id_: str, *, name: str, bucket: SpacesBucket) -> None:
        super().__init__(scope, id_)
        self.key = SpacesKey(
            self,
            "key",
            name=f"{name}-edge-secret",
            grant=[SpacesKeyGrant(bucket=bucket.name, permission="read")],
        )
        self.key.override_logical_id("edge_secret")

    @property
    def secret(self) -> str:
        return self.key.secret_key
