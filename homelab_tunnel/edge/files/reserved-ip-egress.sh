#!/usr/bin/env bash
# Send the edge's outbound traffic from its reserved IPv4.
#
# DigitalOcean translates traffic leaving through the droplet's anchor gateway
# to the reserved IP. Traffic from the droplet's own address keeps using the
# regular gateway (policy table 100), so the embedded DERP's STUN replies and
# WireGuard keep leaving from the address clients sent them to.
set -euo pipefail

METADATA="${HOMELAB_TUNNEL_METADATA:-http://169.254.169.254/metadata/v1}"
TABLE=100

log() { printf 'homelab-tunnel egress: %s\n' "$*"; }
metadata() { curl -fsS --max-time 5 --retry 5 --retry-connrefused "$METADATA/$1"; }

anchor_gateway="$(metadata interfaces/public/0/anchor_ipv4/gateway)"
public_ip="$(metadata interfaces/public/0/ipv4/address)"
public_gateway="$(metadata interfaces/public/0/ipv4/gateway)"
[ -n "$anchor_gateway" ] || {
  log "no anchor gateway in the metadata service; egress left unchanged"
  exit 1
}

ip route replace default via "$public_gateway" dev eth0 table "$TABLE"
ip rule show | grep -qF "from $public_ip lookup $TABLE" ||
  ip rule add from "$public_ip" lookup "$TABLE" priority 1000
ip route replace default via "$anchor_gateway" dev eth0
log "default route via anchor gateway $anchor_gateway; traffic from $public_ip keeps $public_gateway"
