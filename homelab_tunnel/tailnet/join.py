"""The steps that join a homelab machine to the edge's Headscale: a script to read, then run.

`homelab-tunnel join-command ... > join.sh && EDGE=<ip> bash join.sh` on the
homelab installs or upgrades Tailscale only when it is older than what
Headscale accepts, mints a one-hour key on the edge over ssh (the edge's own
mint-preauth-key.sh, which bootstrap uses for the edge itself), joins and
checks the path. The key is minted on the edge and used on the homelab: it
never passes through this tool, the config or Terraform state.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from homelab_tunnel.config import TunnelConfig
from homelab_tunnel.edge.versions import Version, min_tailscale
from homelab_tunnel.errors import InputError
from homelab_tunnel.render.user_data import LIB

TAILSCALE_REPO = "https://pkgs.tailscale.com/stable/$ID/$VERSION_CODENAME"
MINT_KEY = f"{LIB}/mint-preauth-key.sh"


def site_machines(config: TunnelConfig, machine: str | None = None) -> list[str]:
    """The machines the sites name, `machine` (checked to be one of them) first."""
    machines = config.upstream_machines or ["homelab"]
    if machine is None:
        return machines
    if machine not in machines:
        raise InputError(
            "--machine",
            [f"{machine!r} serves none of the config's sites; one of: {', '.join(machines)}"],
        )
    return [machine, *(other for other in machines if other != machine)]


def join_steps(
    config: TunnelConfig,
    *,
    config_path: str = "homelab-tunnel.toml",
    edge: str = "",
    machine: str | None = None,
    host_keys: Sequence[str] = (),
) -> str:
    """The whole script: header, install, key, join, verify. `host_keys`: the edge's, as the
    tool trusts them ("<type> <key>", from the known_hosts beside the config), if it has met it."""
    minimum = min_tailscale(config.headscale.version)
    machines = site_machines(config, machine)
    parts = [
        _header(config, minimum, machines, edge),
        _install(minimum),
        _mint_key(host_keys),
        _join(config),
        _verify(config, config_path),
    ]
    return "\n".join(parts)


def _header(config: TunnelConfig, minimum: Version | None, machines: list[str], edge: str) -> str:
    needs = (
        f"Headscale {config.headscale.version} accepts Tailscale {minimum.series} or newer"
        if minimum
        else f"Headscale {config.headscale.version} is not in the version table: "
        "the newest stable Tailscale is installed"
    )
    ssh = (
        f"#   SSH to the edge is allowed from {', '.join(config.ssh_allowed_cidrs)}.\n"
        if config.ssh_allowed_cidrs
        else "#   SSH to the edge is closed (ssh_allowed_cidrs is empty): add your address/32\n"
        "#   there and apply, or run this in the DigitalOcean droplet console:\n"
        f"#     {MINT_KEY} <machine> 1h\n"
        "#   and run this script with KEY=<the key it printed>.\n"
    )
    others = ""
    if len(machines) > 1:
        others = (
            f"#   The sites use {len(machines)} machines; run it on each with MACHINE=<name>.\n"
        )
    allowed = " | ".join(machines)
    return f"""\
#!/usr/bin/env bash
# Join a homelab machine to {config.headscale_url} ({needs}).
# On the homelab, as a user who may sudo:
#   EDGE=<the edge's reserved IP> bash join.sh    (terraform output -raw reserved_ip)
# Step 2 mints the key on the edge over ssh as root.
{ssh}{others}set -euo pipefail
EDGE="${{EDGE:-{shlex.quote(edge) if edge else ""}}}"
MACHINE="${{MACHINE:-{machines[0]}}}"
case "$MACHINE" in
  {allowed}) ;;
  *)
    echo "MACHINE must be one of the sites' upstream machines: {", ".join(machines)}" >&2
    exit 2
    ;;
esac
if [ -z "${{KEY:-}}" ] && [ -z "$EDGE" ]; then
  echo "set EDGE to the edge's reserved IP (terraform output -raw reserved_ip), or KEY" >&2
  exit 2
fi
"""


def _install(minimum: Version | None) -> str:
    floor = minimum.series if minimum else "0"
    return f"""\
# 1. Tailscale from Tailscale's official stable repository, unless the installed
#    one is already new enough (other systems: https://tailscale.com/download).
#    Never a distribution's old package: Headscale refuses an outdated client and
#    its traffic silently falls back to a relay.
MINIMUM={floor}
installed="$(tailscale version 2>/dev/null | head -n 1 || true)"
oldest="$(printf '%s\\n' "$MINIMUM" "$installed" | sort -V | head -n 1)"
if [ -z "$installed" ] || [ "$oldest" != "$MINIMUM" ]; then
  # shellcheck source=/dev/null
  . /etc/os-release
  sudo mkdir -p --mode=0755 /usr/share/keyrings
  curl -fsSL "{TAILSCALE_REPO}.noarmor.gpg" |
    sudo tee /usr/share/keyrings/tailscale-archive-keyring.gpg >/dev/null
  curl -fsSL "{TAILSCALE_REPO}.tailscale-keyring.list" |
    sudo tee /etc/apt/sources.list.d/tailscale.list >/dev/null
  sudo apt-get update && sudo apt-get install -y tailscale tailscale-archive-keyring
fi
echo "tailscale $(tailscale version | head -n 1) (Headscale needs $MINIMUM or newer)"
"""


def _mint_key(host_keys: Sequence[str]) -> str:
    if host_keys:
        lines = " ".join(shlex.quote(key) for key in host_keys)
        trust = f"""\
#    ssh accepts only the edge's host keys as homelab-tunnel last checked them
#    (<config>.known_hosts): a replaced droplet keeps them, anything else is refused.
EDGE_HOST_KEYS=({lines})
if [ -z "${{KEY:-}}" ]; then
  KNOWN_HOSTS="$(mktemp)"
  trap 'rm -f "$KNOWN_HOSTS"' EXIT
  for key in "${{EDGE_HOST_KEYS[@]}}"; do printf '%s %s\\n' "$EDGE" "$key"; done >"$KNOWN_HOSTS"
fi
HOST_KEYS=(-o StrictHostKeyChecking=yes -o UserKnownHostsFile="${{KNOWN_HOSTS:-/dev/null}}")
"""
    else:
        trust = """\
#    The first contact learns the edge's host key (never a changed one): compare
#    the fingerprint printed below with the 'ssh host key' in the edge's
#    'edge ready' line (droplet console, /var/log/cloud-init-output.log).
HOST_KEYS=(-o StrictHostKeyChecking=accept-new)
"""
    return f"""\
# 2. A one-hour, single-use pre-auth key, minted on the edge for the Headscale
#    user named after the machine: the edge's ACL policy lets the edge reach
#    exactly the site ports on that user's nodes.
{trust}if [ -z "${{KEY:-}}" ]; then
  KEY="$(ssh -o BatchMode=yes "${{HOST_KEYS[@]}}" root@"$EDGE" {MINT_KEY} "$MACHINE" 1h)"
  known="${{KNOWN_HOSTS:-}}"
  [ -n "$known" ] || known=~/.ssh/known_hosts
  echo "edge host key: $(ssh-keygen -l -F "$EDGE" -f "$known" |
    awk '!/^#/ {{ print $3 " (" $2 ")" }}')"
fi
"""


def _join(config: TunnelConfig) -> str:
    return f"""\
# 3. Join. --hostname: the sites reach the machine as $MACHINE.{config.headscale.base_domain};
#    --accept-dns=false: the homelab needs no tailnet names, its resolver stays as is.
#    Joined to another server before? Add --reset so no old setting lingers.
sudo tailscale up --login-server {config.headscale_url} --auth-key "$KEY" \\
  --hostname "$MACHINE" --accept-dns=false --timeout 2m
"""


def _verify(config: TunnelConfig, config_path: str) -> str:
    return f"""\
# 4. The path to the edge must be direct ("via <ip>:<port>"), not "via DERP".
tailscale ping -c 10 {config.name}
echo "joined as $MACHINE; check the edge's view from your machine:"
printf '  homelab-tunnel doctor --config %s --ssh root@%s\\n' \\
  {shlex.quote(shlex.quote(config_path))} "$EDGE"
"""
