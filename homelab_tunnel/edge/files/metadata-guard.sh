#!/bin/sh
# Close DigitalOcean's metadata service (169.254.169.254) to every process but
# root's and the monitoring agent's.
#
# The service answers anyone on the droplet without authentication, user_data
# included, and user_data carries the edge's secrets: without this rule a
# compromised Caddy or Headscale reads them. cloud-init runs this text as its
# first bootcmd on every boot, before write_files and before any service of
# ours starts; bootstrap.sh runs it again once DigitalOcean's monitoring agent
# exists (its user, do-agent, reads its auth token and posts metrics through
# the same address; the droplet agent runs as root) and then checks that a
# non-root process is refused. POSIX sh: cloud-init runs bootcmd with /bin/sh.
set -eu

METADATA_IP=169.254.169.254
agent_uid="$(id -u do-agent 2>/dev/null || true)"

if command -v nft >/dev/null 2>&1; then
  # Declaring the table first makes the delete safe on the first run: one atomic
  # transaction replaces the whole table, so a second run never doubles a rule.
  # Only packets of a socket are judged: the refusal the kernel sends back has
  # none, and must pass.
  nft -f - <<EOF
table inet homelab_tunnel_metadata
delete table inet homelab_tunnel_metadata
table inet homelab_tunnel_metadata {
  chain output {
    type filter hook output priority filter; policy accept;
    ip daddr $METADATA_IP meta skuid != { 0${agent_uid:+, $agent_uid} } reject
  }
}
EOF
else
  # The droplet image without nft: iptables (its nft backend on Ubuntu 24.04).
  iptables -w -N HOMELAB_TUNNEL_METADATA 2>/dev/null || iptables -w -F HOMELAB_TUNNEL_METADATA
  iptables -w -A HOMELAB_TUNNEL_METADATA -m owner --uid-owner 0 -j RETURN
  [ -z "$agent_uid" ] ||
    iptables -w -A HOMELAB_TUNNEL_METADATA -m owner --uid-owner "$agent_uid" -j RETURN
  iptables -w -A HOMELAB_TUNNEL_METADATA -j REJECT
  iptables -w -C OUTPUT -d "$METADATA_IP" -j HOMELAB_TUNNEL_METADATA 2>/dev/null ||
    iptables -w -I OUTPUT -d "$METADATA_IP" -j HOMELAB_TUNNEL_METADATA
fi
echo "homelab-tunnel: metadata service closed to non-root processes${agent_uid:+ (but do-agent, uid $agent_uid)}"
