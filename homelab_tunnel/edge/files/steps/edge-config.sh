# bootstrap step: the day-to-day config (Caddyfile, ACL policy, health settings,
# webhook) from the config bucket, verified and checked by the config agent;
# the last applied version from the volume when the bucket does not answer.
# A running service re-reads what changed; the next steps start the others.
# shellcheck shell=bash
said="$(PYTHONPATH="$ROOT/usr/local/lib/homelab-tunnel" HOMELAB_TUNNEL_ROOT="${ROOT:-/}" \
  python3 -m homelab_tunnel.edge.config_agent boot 2>&1)" || fail "${said##*$'\n'}"
step_done "${said##*$'\n'}"
