#!/usr/bin/env bash
# Bring Headscale's state back from the backup bucket (homelab_tunnel/edge/restore.py):
#   restore-state.sh                     bootstrap: only on a blank volume
#   restore-state.sh --list              the restore points in the bucket
#   restore-state.sh --at TIME [--force] that point in time (RFC 3339), by hand
#   restore-state.sh --status            how the last --at ended (or that it runs)
set -euo pipefail

ROOT="${HOMELAB_TUNNEL_ROOT:-}"
export PYTHONPATH="$ROOT/usr/local/lib/homelab-tunnel"
exec python3 -m homelab_tunnel.edge.restore "$@"
