# bootstrap step: Caddy, on the Caddyfile the edge-config step installed, once
# the reserved IP answers, so ACME's first attempt succeeds.
# shellcheck shell=bash
chown -R caddy:caddy "$ROOT/var/lib/caddy"
waited=0
until [ "$(metadata reserved_ip/ipv4/active || true)" = "true" ]; do
  if [ "$waited" -ge "$RESERVED_IP_WAIT" ]; then
    fail "reserved IP still not active after ${RESERVED_IP_WAIT}s; Caddy not started so no certificate request fails against the wrong address. Run this script again once it is assigned"
  fi
  [ "$waited" = 0 ] && log "waiting for the reserved IP to become active (at most ${RESERVED_IP_WAIT}s)"
  sleep 10
  waited=$((waited + 10))
done
reserved_ip="$(metadata reserved_ip/ipv4/ip_address)"
enable_unit caddy
start_unit caddy 0
step_done "caddy serving on reserved IP $reserved_ip"
