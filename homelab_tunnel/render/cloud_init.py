"""The droplet's user_data.

Minimal for now: a valid `#cloud-config` that only sets the host name. The
full document (write_files + bootstrap.sh) replaces it with the edge software.
"""

from __future__ import annotations

import yaml

from homelab_tunnel.config import TunnelConfig


def render_user_data(config: TunnelConfig) -> str:
    document = {"hostname": config.name, "preserve_hostname": False}
    return "#cloud-config\n" + yaml.safe_dump(document, sort_keys=False)
