# bootstrap step: Headscale up (its version stamped on the volume), then the
# edge joins it.
# shellcheck shell=bash
headscale_changed=0
install_file "$CONF/headscale.yaml" "$ROOT/etc/headscale/config.yaml" 0644 && headscale_changed=1
# The embedded DERP advertises the droplet's own addresses (see config.yaml).
ipv4="$(metadata interfaces/public/0/ipv4/address)"
ipv6="$(metadata interfaces/public/0/ipv6/address || true)"
if write_file "$SYSTEMD/headscale.service.d/20-derp-address.conf" 0644 <<EOF; then
# Written by homelab-tunnel bootstrap from the metadata service.
[Service]
Environment=HEADSCALE_DERP_SERVER_IPV4=${ipv4}
Environment=HEADSCALE_DERP_SERVER_IPV6=${ipv6}
EOF
  # New on every droplet: systemd must read the drop-in before the start.
  systemctl daemon-reload
  headscale_changed=1
fi
enable_unit headscale
start_unit headscale "$headscale_changed"
for _ in $(seq 1 60); do
  curl -fsS --max-time 2 -o /dev/null http://127.0.0.1:8080/health && break
  sleep 1
done
curl -fsS --max-time 2 -o /dev/null http://127.0.0.1:8080/health ||
  fail "headscale is not answering on 127.0.0.1:8080 (journalctl -u headscale)"
guard stamp "$HEADSCALE_VERSION" >/dev/null

# tailscaled now, not when its package was installed: Go reads the system's CA
# roots once, and they hold tls.ca_roots only since the packages step ended.
enable_unit tailscaled
start_unit tailscaled 0
EDGE_NAME="$EDGE_NAME" "$here/join-edge.sh" ||
  fail "the edge could not join its own Headscale (tailscale status; journalctl -u tailscaled)"
step_done "headscale running (version stamped on the volume); edge joined the tailnet as $EDGE_NAME"
