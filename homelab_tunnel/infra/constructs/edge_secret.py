"""The edge secret: a random value only Terraform and the edge know."""

from __future__ import annotations

from cdktf_cdktf_provider_digitalocean.spaces_key import SpacesKey, SpacesKeyGrant
from constructs import Construct


class EdgeSecret(Construct):
    """A Spaces key whose secret is the edge's secret, and which opens nothing of note.

    The DigitalOcean provider, the only one this stack uses, has no random
    resource; a Spaces key's secret is a random value DigitalOcean makes and
    Terraform keeps (sensitive). Only that secret reaches the edge, never the
    key's id, so it is no credential there. A key needs a grant: `read` on the
    config bucket, whose contents the edge reads anyway. What it keys: the MAC
    of the config object (edge/channel.py) and the edge's own records.
    """

    def __init__(self, scope: Construct, id_: str, *, name: str, bucket: str) -> None:
        super().__init__(scope, id_)
        self.key = SpacesKey(
            self,
            "key",
            name=f"{name}-edge-secret",
            grant=[SpacesKeyGrant(bucket=bucket, permission="read")],
        )
        self.key.override_logical_id("edge_secret")

    @property
    def value(self) -> str:
        return self.key.secret_key
