#!/usr/bin/env bash
# Join the edge's own tailscaled to the Headscale on this box, once.
#
# Run by bootstrap.sh once Headscale answers on 127.0.0.1:8080 (and by the
# lab, which runs the same file). A replaced droplet restores its node from
# the state volume: tailscaled is given time to settle before a key is minted,
# or the edge would register a second time (as <name>-1).
set -euo pipefail

name="${EDGE_NAME:?EDGE_NAME must name the edge (edge.env)}"
here="$(dirname "$(readlink -f "$0")")"

backend_state() {
  tailscale status --json 2>/dev/null |
    python3 -c 'import json, sys; print(json.load(sys.stdin).get("BackendState", ""))' || true
}

for _ in $(seq 1 30); do
  case "$(backend_state)" in Running | NeedsLogin | NeedsMachineAuth | Stopped) break ;; esac
  sleep 1
done
[ "$(backend_state)" = Running ] && exit 0

# This node's identity is gone (a blank volume restored from the backup keeps
# Headscale's nodes but not tailscaled's key): the edge's old entries are stale.
# Remove them, or the new node would be named <name>-1 and the old one linger.
headscale nodes list -o json | python3 -c '
import json, sys
for node in json.load(sys.stdin) or []:
    if (node.get("user") or {}).get("name") == "edge" and not node.get("online"):
        print(node["id"])
' | while read -r stale; do
  headscale nodes delete --identifier "$stale" --force >/dev/null
done

key="$("$here/mint-preauth-key.sh" edge 10m)"
# Loopback: the join never waits for DNS or certificates. MagicDNS stays out of
# the system resolver; Caddy asks 100.100.100.100 itself. --timeout: a join
# that hangs fails (and bootstrap is retried) instead of waiting forever.
tailscale up --login-server http://127.0.0.1:8080 --authkey "$key" \
  --hostname "$name" --accept-dns=false --timeout 120s
