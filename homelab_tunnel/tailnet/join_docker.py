"""The homelab joins from Docker: a compose service running the official tailscale/tailscale image.

For a homelab whose sites already run in containers (Docker, TrueNAS and
Unraid apps, Portainer stacks): nothing is installed on the host. The
image's entry point, containerboot, reads its settings from the environment
(tailscale.com v1.102.3, cmd/containerboot/main.go:14-51 lists them,
settings.go:96-113 reads them): TS_AUTHKEY, TS_HOSTNAME, TS_STATE_DIR,
TS_USERSPACE (default true), TS_ACCEPT_DNS, TS_AUTH_ONCE, TS_EXTRA_ARGS. It
runs `tailscale up --accept-dns=... --authkey=... --hostname=... <TS_EXTRA_ARGS>`
(tailscaled.go:113-146), so --login-server travels in TS_EXTRA_ARGS.

Each site container joins this service's network namespace
(`network_mode: service:tailscale`) and listens there: the edge reaches it
at <machine>.<base_domain>:<port>. With TUN the kernel delivers it; in
userspace mode tailscaled forwards a connection to its tailnet address to
127.0.0.1:<port> (wgengine/netstack/netstack.go:1727-1730).
"""

from __future__ import annotations

import json
import re

from homelab_tunnel.config import TunnelConfig
from homelab_tunnel.edge.versions import Version, client_supported, min_tailscale, parse_version
from homelab_tunnel.errors import InputError
from homelab_tunnel.tailnet.join import MINT_KEY

IMAGE = "tailscale/tailscale"
# The client the lab runs (tools/binaries.toml, [tailscale]); a test keeps the two equal.
IMAGE_VERSION = "1.102.3"
DEFAULT_TAG = f"v{IMAGE_VERSION}"
# Tags that follow Tailscale's newest stable release: never below a current Headscale's minimum.
MOVING_TAGS = ("stable", "latest")
_RELEASE_TAG = re.compile(r"v?[0-9]+\.[0-9]+\.[0-9]+")
TAG_FORM = f"vX.Y.Z (e.g. {DEFAULT_TAG}) or one of {', '.join(MOVING_TAGS)}"


def checked_tag(config: TunnelConfig, tag: str) -> str:
    """The image tag, if Headscale accepts the client in it: the version gate on the image."""
    if tag in MOVING_TAGS:
        return tag
    if not _RELEASE_TAG.fullmatch(tag):
        raise InputError("--image-tag", [f"{tag!r} is not a release tag: give {TAG_FORM}"])
    client = parse_version(tag)
    minimum = min_tailscale(config.headscale.version)
    if minimum is not None and not client_supported(client, minimum):
        raise InputError(
            "--image-tag",
            [
                f"{tag!r} is Tailscale {client}, older than {minimum.series}, the oldest client "
                f"Headscale {config.headscale.version} accepts (a refused client's traffic falls "
                f"back to a relay); use {DEFAULT_TAG} or newer"
            ],
        )
    return tag


def _quoted(value: str) -> str:
    """A YAML double-quoted scalar (JSON's escapes are YAML's)."""
    return json.dumps(value)


def compose_service(
    config: TunnelConfig, *, machine: str, tag: str, userspace: bool, edge: str = ""
) -> str:
    """A compose file: the tailscale service, its state volume, and how sites join it."""
    minimum = min_tailscale(config.headscale.version)
    return "\n".join(
        [
            _header(config, machine, minimum, edge or "<edge>"),
            "services:",
            _service(config, machine, tag, userspace),
            _sites(config, machine),
            "volumes:\n  tailscale-state:\n",
        ]
    )


def _header(config: TunnelConfig, machine: str, minimum: Version | None, edge: str) -> str:
    accepts = (
        f"Headscale {config.headscale.version} accepts Tailscale {minimum.series} or newer"
        if minimum
        else f"Headscale {config.headscale.version} is not in the version table"
    )
    host = f"{machine}.{config.headscale.base_domain}"
    return f"""\
# Join this Docker host to {config.headscale_url} as {machine!r}, with the
# official Tailscale image and nothing installed on the host
# ({accepts}).
#
# 1. Save this as compose.yaml, or add the service and the volume to yours.
# 2. Mint a one-hour, single-use key on the edge, and start the service with it:
#      export TS_AUTHKEY="$(ssh root@{edge} {MINT_KEY} {machine} 1h)"
#      docker compose up -d tailscale
#    (SSH to the edge closed? Run `{MINT_KEY} {machine} 1h`
#    in the DigitalOcean droplet console and export what it prints.)
#    The key is used once: the node is kept in the tailscale-state volume.
# 3. Put each site's container in this service's network (see below): the edge
#    reaches it at {host}:<port>.
# 4. The path must be direct ("via <ip>:<port>", not "via DERP"):
#      docker compose exec tailscale tailscale ping {config.name}
"""


def _service(config: TunnelConfig, machine: str, tag: str, userspace: bool) -> str:
    if userspace:
        networking = """\
      # Userspace networking: no TUN device or capability needed (LXC without
      # /dev/net/tun, locked-down NAS apps); connections to this node's tailnet
      # address reach 127.0.0.1:<port> in this service's network.
      TS_USERSPACE: "true"
"""
        device = ""
    else:
        networking = """\
      # Kernel networking through /dev/net/tun (the faster path); --userspace
      # prints a service that needs neither the device nor NET_ADMIN.
      TS_USERSPACE: "false"
"""
        device = """\
    devices:
      - /dev/net/tun:/dev/net/tun
    cap_add:
      - NET_ADMIN
"""
    moving = (
        "    # A moving tag: pulls follow Tailscale's newest stable release.\n"
        if tag in MOVING_TAGS
        else ""
    )
    return f"""\
  tailscale:
{moving}    image: {_quoted(f"{IMAGE}:{tag}")}
    environment:
      # Empty after the first start: the node's state is in the volume.
      TS_AUTHKEY: ${{TS_AUTHKEY:-}}
      # Log in only without state: a restart never retries the expired key.
      TS_AUTH_ONCE: "true"
      # The sites reach the machine by this name (the Headscale user it joins as).
      TS_HOSTNAME: {_quoted(machine)}
      TS_STATE_DIR: /var/lib/tailscale
{networking}      # The homelab needs no tailnet names: its resolver stays as it is.
      TS_ACCEPT_DNS: "false"
      TS_EXTRA_ARGS: {_quoted(f"--login-server={config.headscale_url}")}
    volumes:
      - tailscale-state:/var/lib/tailscale
{device}    restart: unless-stopped
"""


def _sites(config: TunnelConfig, machine: str) -> str:
    ports = sorted({site.port for site in config.sites if site.upstream == machine})
    served = ", ".join(
        f"{site.domain} on {site.port}" for site in config.sites if site.upstream == machine
    )
    example = ports[0] if ports else 8080
    return f"""\
  # Each site's container joins this network and listens on its port there
  # ({served or "no site of the config names this machine"}); drop its
  # `ports:`, nothing needs publishing on the host. For example:
  # site:
  #   image: <your image, listening on {example}>
  #   network_mode: service:tailscale
  #   depends_on: [tailscale]
"""
