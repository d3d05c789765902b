#!/usr/bin/env bash
# Send the edge's outbound traffic from its reserved IPv4.
#
# DigitalOcean translates traffic leaving through the droplet's anchor gateway
# to the reserved IP. Two kinds of traffic must keep leaving from the droplet's
# own address, through the regular gateway (policy table 100), because clients
# sent it to that address and expect the answer from it:
# - traffic from sockets bound to the droplet's own address;
# - replies of the embedded DERP's STUN (UDP 3478) and of tailscaled's
#   WireGuard (UDP 41641). Both listen on 0.0.0.0, so the kernel picks their
#   source from the routes: without these rules, a reply would leave from the
#   reserved IP, a NATed client would drop it, and no direct path would form.
set -euo pipefail

METADATA="${HOMELAB_TUNNEL_METADATA:-http://169.254.169.254/metadata/v1}"
TABLE=100
# UDP source ports whose replies keep the droplet's own address: STUN, WireGuard.
KEEP_OWN_ADDRESS_PORTS=(3478 41641)

log() { printf 'homelab-tunnel egress: %s\n' "$*"; }
metadata() { curl -fsS --max-time 5 --retry 5 --retry-connrefused "$METADATA/$1"; }
# Not `ip rule show | grep -q`: grep -q stops at the first match, ip can then die
# of SIGPIPE, and pipefail reads that as "no such rule"; adding it again fails
# ("File exists") and stops a second run halfway.
has_rule() { [[ "$(ip rule show)" == *"$1"* ]]; }

anchor_gateway="$(metadata interfaces/public/0/anchor_ipv4/gateway)"
public_ip="$(metadata interfaces/public/0/ipv4/address)"
public_gateway="$(metadata interfaces/public/0/ipv4/gateway)"
[ -n "$anchor_gateway" ] || {
  log "no anchor gateway in the metadata service; egress left unchanged"
  exit 1
}

ip route replace default via "$public_gateway" dev eth0 table "$TABLE"
has_rule "from $public_ip lookup $TABLE" ||
  ip rule add from "$public_ip" lookup "$TABLE" priority 1000
priority=900
for port in "${KEEP_OWN_ADDRESS_PORTS[@]}"; do
  has_rule "ipproto udp sport $port lookup $TABLE" ||
    ip rule add priority "$priority" ipproto udp sport "$port" lookup "$TABLE"
  priority=$((priority + 1))
done
ip route replace default via "$anchor_gateway" dev eth0
log "default route via anchor gateway $anchor_gateway; traffic from $public_ip and UDP replies from ports ${KEEP_OWN_ADDRESS_PORTS[*]} keep $public_gateway"
