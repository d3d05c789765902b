"""Headscale's config.yaml and ACL policy for the edge.

Keys follow `config-example.yaml` of the pinned Headscale release (0.29.x);
a removed key makes Headscale refuse to start, and tests compare against a
copy of that file.
"""

from __future__ import annotations

import json
from collections import defaultdict

from homelab_tunnel.config import EDGE_USER, TunnelConfig

HEADSCALE_LISTEN = "127.0.0.1:8080"
POLICY_PATH = "/etc/headscale/policy.hujson"
DERP_REGION_ID = 999


def render_headscale_config(config: TunnelConfig) -> str:
    hs = config.headscale
    derp_urls = json.dumps(list(hs.derp_urls))
    return f"""\
# Headscale {hs.version} on the {config.name} edge, written by homelab-tunnel.
# Changes here are replaced on the next deploy: edit the homelab-tunnel config instead.

# The URL clients log in to. Caddy terminates TLS for it and proxies to listen_addr.
server_url: {config.headscale_url}
# Loopback only: every outside request arrives through Caddy.
listen_addr: {HEADSCALE_LISTEN}
metrics_listen_addr: 127.0.0.1:9090
# gRPC (remote CLI) stays on loopback; use the headscale CLI on the box.
grpc_listen_addr: 127.0.0.1:50443
grpc_allow_insecure: false
# Caddy on this box is the only proxy whose X-Forwarded-For is believed.
trusted_proxies:
  - 127.0.0.1/32
  - ::1/128

noise:
  # Identity of this control server. On the state volume: losing it logs out every node.
  private_key_path: /var/lib/headscale/noise_private.key

prefixes:
  v4: 100.64.0.0/10
  v6: fd7a:115c:a1e0::/48
  allocation: sequential

derp:
  server:
    # The edge is its own relay: if a direct path fails, traffic relays through
    # this box (one hop the request already makes), not a public relay far away.
    enabled: true
    region_id: {DERP_REGION_ID}
    region_code: "headscale"
    region_name: "{config.name} edge"
    verify_clients: true
    # UDP 3478 is open in the cloud firewall for STUN.
    stun_listen_addr: "0.0.0.0:3478"
    private_key_path: /var/lib/headscale/derp_server_private.key
    automatically_add_embedded_derp_region: true
    # derp.server.ipv4/ipv6 are the droplet's OWN addresses, set at boot from the
    # metadata service through HEADSCALE_DERP_SERVER_IPV4/_IPV6 in
    # /etc/systemd/system/headscale.service.d/20-derp-address.conf.
    # WARNING: not the reserved IP - UDP to a reserved IP arrives on the anchor
    # address but replies leave from the droplet's own, which breaks STUN.
  # Public DERP maps. Empty keeps relaying on this edge only.
  urls: {derp_urls}
  paths: []
  auto_update_enabled: true
  update_frequency: 3h

# Upgrades come with a new deploy (pinned version), not from a nag in the log.
disable_check_updates: true

node:
  # 0: node keys never expire; revoke nodes with `headscale nodes expire`.
  expiry: 0

database:
  type: sqlite
  sqlite:
    # On the state volume, with the keys above.
    path: /var/lib/headscale/db.sqlite
    write_ahead_log: true

log:
  level: info
  format: text

policy:
  # Who may reach whom on the tailnet: the edge reaches exactly the site upstreams.
  mode: file
  path: {POLICY_PATH}

dns:
  magic_dns: true
  # Upstreams are reached as <machine>.{hs.base_domain}.
  base_domain: {hs.base_domain}
  # Clients keep their own resolvers; MagicDNS names still resolve.
  override_local_dns: false
  nameservers:
    global: []
    split: {{}}
  search_domains: []
  extra_records: []

unix_socket: /var/run/headscale/headscale.sock
unix_socket_permission: "0770"

logtail:
  enabled: false
"""


def upstream_destinations(config: TunnelConfig) -> list[str]:
    """Policy destinations: each upstream machine (by user, or by address) and its ports."""
    ports: dict[str, set[int]] = defaultdict(set)
    for site in config.sites:
        alias = site.upstream if site.upstream_is_address else f"{site.upstream}@"
        ports[alias].add(site.port)
    return [
        f"{alias}:{','.join(str(port) for port in sorted(ports[alias]))}" for alias in sorted(ports)
    ]


def render_policy(config: TunnelConfig) -> str:
    policy = {
        "acls": [
            {
                "action": "accept",
                "src": [f"{EDGE_USER}@"],
                "dst": upstream_destinations(config),
            }
        ]
    }
    header = (
        f"// Headscale ACL policy for the {config.name} edge, written by homelab-tunnel.\n"
        f"// The edge ({EDGE_USER}@) may open connections to exactly the site upstreams and\n"
        "// ports; nothing else is allowed. Each upstream machine joins as the user\n"
        "// of its own name (homelab-tunnel join-command prints how).\n"
    )
    return header + json.dumps(policy, indent=2) + "\n"
