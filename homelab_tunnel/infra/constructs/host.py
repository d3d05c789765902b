"""The droplet itself: disposable, everything it must keep lives on the volume."""

from __future__ import annotations

from cdktf import ITerraformDependable
from cdktf_cdktf_provider_digitalocean.data_digitalocean_ssh_key import DataDigitaloceanSshKey
from cdktf_cdktf_provider_digitalocean.droplet import Droplet
from cdktf_cdktf_provider_digitalocean.volume import Volume
from constructs import Construct

TAG = "homelab-tunnel"


class EdgeHost(Construct):
    """One droplet with the state volume attached at creation.

    user_data, image, region and size changes replace it; `depends_on` lets
    the stack hold it back until the reserved IP and DNS exist, so the first
    ACME attempt on boot can succeed.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        name: str,
        region: str,
        size: str,
        image: str,
        ssh_key_fingerprints: list[str],
        ssh_key_names: list[str],
        user_data: str,
        volume: Volume,
        depends_on: list[ITerraformDependable],
    ) -> None:
        super().__init__(scope, id_)
        ssh_keys = list(ssh_key_fingerprints)
        for index, key_name in enumerate(ssh_key_names):
            key = DataDigitaloceanSshKey(self, f"ssh-key-{index}", name=key_name)
            key.override_logical_id(f"key_{index}")
            ssh_keys.append(key.fingerprint)
        self.droplet = Droplet(
            self,
            "droplet",
            name=name,
            region=region,
            size=size,
            image=image,
            ipv6=True,
            monitoring=True,
            graceful_shutdown=True,
            tags=[TAG, name],
            ssh_keys=ssh_keys or None,
            user_data=user_data,
            volume_ids=[volume.id],
            depends_on=depends_on,
        )
        self.droplet.override_logical_id("edge")
