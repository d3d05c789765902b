"""The steps that join the homelab machine to the edge's Headscale, as text to follow.

The pre-auth key is minted on the edge and typed on the homelab: it never
passes through this tool, the config or Terraform state.
"""

from __future__ import annotations

import shlex

from homelab_tunnel.config import TunnelConfig
from homelab_tunnel.edge.versions import Version, min_tailscale

TAILSCALE_REPO = "https://pkgs.tailscale.com/stable/$ID/$VERSION_CODENAME"


def join_steps(
    config: TunnelConfig, *, config_path: str = "homelab-tunnel.toml", edge: str = ""
) -> str:
    """Install or upgrade Tailscale, mint a key on the edge, join, verify the path."""
    minimum = min_tailscale(config.headscale.version)
    names = config.upstream_machines or ["homelab"]
    parts = [
        _title(config, minimum),
        _install(minimum),
        _mint_key(config, names[0], edge),
        _join(config, names),
        _verify(config, config_path),
    ]
    return "\n".join(parts)


def _title(config: TunnelConfig, minimum: Version | None) -> str:
    needs = (
        f"Headscale {config.headscale.version} accepts Tailscale {minimum.series} or newer"
        if minimum
        else f"Headscale {config.headscale.version} is not in the version table: "
        "install the newest stable Tailscale"
    )
    return f"# Join the homelab to {config.headscale_url} ({needs}).\n"


def _install(minimum: Version | None) -> str:
    return f"""\
# 1. On the homelab: install or upgrade Tailscale from Tailscale's official stable
#    repository (Debian/Ubuntu shown; other systems: https://tailscale.com/download).
#    Never a distribution's old package: Headscale refuses an outdated client and
#    its traffic silently falls back to a relay.
. /etc/os-release
sudo mkdir -p --mode=0755 /usr/share/keyrings
curl -fsSL "{TAILSCALE_REPO}.noarmor.gpg" \\
  | sudo tee /usr/share/keyrings/tailscale-archive-keyring.gpg >/dev/null
curl -fsSL "{TAILSCALE_REPO}.tailscale-keyring.list" \\
  | sudo tee /etc/apt/sources.list.d/tailscale.list >/dev/null
sudo apt-get update && sudo apt-get install -y tailscale tailscale-archive-keyring
tailscale version    # the first line must be {minimum.series if minimum else "current"} or newer
"""


def _mint_key(config: TunnelConfig, hostname: str, edge: str) -> str:
    ssh_note = (
        f"SSH is allowed from {', '.join(config.ssh_allowed_cidrs)} (ssh_allowed_cidrs)."
        if config.ssh_allowed_cidrs
        else "SSH to the edge is closed (ssh_allowed_cidrs is empty): add your address/32\n"
        "#    there and apply, or use the DigitalOcean droplet console."
    )
    quoted = shlex.quote(edge) if edge else ""
    version = config.headscale.version
    return f"""\
# 2. From your machine: mint a one-hour, single-use pre-auth key on the edge.
#    {ssh_note}
#    In the console, run the same headscale commands without `ssh root@"$EDGE"`.
EDGE={quoted}    # the edge's reserved IP: terraform output -raw reserved_ip
#    The user is named after the machine: the edge's ACL policy lets the edge
#    reach exactly the site ports on the nodes of user {hostname}.
ssh root@"$EDGE" headscale users create {hostname}    # once; 'already exists' is fine
ssh root@"$EDGE" headscale users list --name {hostname}    # shows the user's ID
USER_ID=    # that ID: Headscale {version} takes the user by numeric ID, not by name
ssh root@"$EDGE" headscale preauthkeys create --user "$USER_ID" --expiration 1h
"""


def _join(config: TunnelConfig, names: list[str]) -> str:
    hostname = names[0]
    more = ""
    if len(names) > 1:
        more = (
            f"#    The sites also use {', '.join(names[1:])}: repeat steps 1-3 on each,\n"
            "#    as the Headscale user of the same name, with its own --hostname and key:\n"
            "#    the edge's ACL policy lets it reach each upstream machine by that user.\n"
        )
    return f"""\
# 3. On the homelab: join with that key.
KEY=    # the key the last command printed
sudo tailscale up --login-server {config.headscale_url} --auth-key "$KEY" \\
  --hostname {hostname} --accept-dns=false
#    --hostname {hostname}: the sites reach it as {hostname}.{config.headscale.base_domain}
#    --accept-dns=false: the homelab needs no tailnet names; its resolver stays as is.
#    Joined to another server before? Add --reset so no old setting lingers.
{more}"""


def _verify(config: TunnelConfig, config_path: str) -> str:
    quoted = shlex.quote(config_path)  # the steps are pasted into a shell
    return f"""\
# 4. Verify the path is direct (not via DERP). The edge joined as its host name,
#    {config.name}; tailscale ping finds peers by that short name without DNS.
tailscale ping {config.name}    # on the homelab: wants "pong ... via <ip>:<port>"
homelab-tunnel doctor --config {quoted} --ssh root@"$EDGE"    # yours: wants exit 0
"""
