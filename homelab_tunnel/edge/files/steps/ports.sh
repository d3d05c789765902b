# bootstrap step: the forwarded ports, from the port list the edge-config step
# installed, once the edge is on the tailnet; then the port agent keeps them
# pointed at the upstreams' current tailnet addresses.
# shellcheck shell=bash
said="$(PYTHONPATH="$ROOT/usr/local/lib/homelab-tunnel" HOMELAB_TUNNEL_ROOT="${ROOT:-/}" \
  python3 -m homelab_tunnel.edge.port_agent apply 2>&1)" || fail "${said##*$'\n'}"
enable_unit homelab-tunnel-ports.service
systemctl is-active --quiet homelab-tunnel-ports.service || systemctl start homelab-tunnel-ports.service
step_done "${said##*$'\n'}"
