# bootstrap step: optional egress from the reserved IP.
# shellcheck shell=bash
if [ "$EGRESS_VIA_RESERVED_IP" = true ]; then
  enable_unit homelab-tunnel-egress.service
  systemctl is-active --quiet homelab-tunnel-egress.service || systemctl start homelab-tunnel-egress.service
fi
step_done "egress via reserved IP: $EGRESS_VIA_RESERVED_IP"
