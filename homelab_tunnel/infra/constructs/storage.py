"""The state volume: Headscale's keys and database, Tailscale state, certificates."""

from __future__ import annotations

from cdktf import TerraformResourceLifecycle
from cdktf_cdktf_provider_digitalocean.volume import Volume
from constructs import Construct


class EdgeStorage(Construct):
    """A block-storage volume that outlives any droplet.

    `prevent_destroy` makes Terraform refuse any plan that would delete it;
    bootstrap formats it only when blank, so a new droplet finds the old state.
    """

    def __init__(self, scope: Construct, id_: str, *, name: str, region: str, size_gb: int) -> None:
        super().__init__(scope, id_)
        self.volume = Volume(
            self,
            "volume",
            name=name,
            region=region,
            size=size_gb,
            description="homelab-tunnel edge state: headscale, tailscale, caddy certificates",
            lifecycle=TerraformResourceLifecycle(prevent_destroy=True),
        )
        self.volume.override_logical_id("state")
