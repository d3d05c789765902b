#!/usr/bin/env bash
# Bootstrap the homelab-tunnel edge: state volume, current Tailscale and Caddy,
# Headscale's state restored from the backup bucket on a blank volume, the
# pinned Headscale (never one that skips a minor release), the config from the
# config bucket, then join the edge to its own tailnet, stream backups, start
# serving and hand over to the config agent.
#
#   bootstrap.sh            every step of steps/order, in that order
#   bootstrap.sh STEP ...   only those (e.g. `bootstrap.sh caddy`)
#
# Each step is steps/<name>.sh, sourced here with the helpers of helpers.sh and
# those below; it ends with step_done, which logs "homelab-tunnel: <step>: <what
# it did>" and keeps that line in /run/homelab-tunnel/bootstrap/<step>. Adding a step is a file
# and a line in steps/order; nothing is numbered.
#
# homelab-tunnel-bootstrap.service runs it at first boot (started by
# cloud-init) and again, with growing waits, until the edge is ready; it is
# safe to run again by hand (sudo /usr/local/lib/homelab-tunnel/bootstrap.sh):
# every step checks before it changes anything. It ends with one line, "edge
# ready" or "FAILED: why", also kept in $STATUS for the health agent.
set -euo pipefail

here="$(dirname "$(readlink -f "$0")")"
# ROOT, STATUS, STEPS, APT_OPTS and the helpers: log, fail, step_done, install_file ...
# shellcheck source=helpers.sh
. "$here/helpers.sh"
METADATA="${HOMELAB_TUNNEL_METADATA:-http://169.254.169.254/metadata/v1}"
CONF="$ROOT/etc/homelab-tunnel"
HS="$ROOT/var/lib/headscale"
SYSTEMD="$ROOT/etc/systemd/system"
RESERVED_IP_WAIT="${HOMELAB_TUNNEL_RESERVED_IP_WAIT:-600}"
# Set by homelab-tunnel-bootstrap.service: counts this boot's attempts.
ATTEMPTS="${HOMELAB_TUNNEL_BACKOFF:-}"

trap 'fail "line $LINENO: $BASH_COMMAND"' ERR

# Before anything else, even a retry's wait: the metadata service closed to
# non-root processes. cloud-init's bootcmd did it before any service started;
# again now, for a monitoring agent installed since, and checked.
"$here/metadata-guard.sh" >/dev/null || fail "cannot close the metadata service to non-root processes"
if setpriv --reuid=nobody --regid=nogroup --clear-groups \
  curl -fsS --max-time 5 -o /dev/null "$METADATA/id" 2>/dev/null; then
  fail "the metadata service still answers a non-root process: user_data's secrets are readable by every local user"
fi

# Retried by systemd after a failure: wait 30 s, 60 s, 120 s ... (at most 15 min)
# so a missing reserved IP or a download outage is not hammered.
if [ -n "$ATTEMPTS" ]; then
  mkdir -p "$(dirname "$ATTEMPTS")"
  failed_before="$(cat "$ATTEMPTS" 2>/dev/null || echo 0)"
  echo $((failed_before + 1)) >"$ATTEMPTS"
  if [ "$failed_before" -gt 0 ]; then
    delay=$((30 << (failed_before > 5 ? 5 : failed_before - 1)))
    [ "$delay" -le 900 ] || delay=900
    log "attempt $((failed_before + 1)) after a failure: waiting ${delay}s first"
    sleep "$delay"
  fi
fi

[ -r "$CONF/edge.env" ] || fail "missing $CONF/edge.env (written by cloud-init from the homelab-tunnel config)"
# shellcheck source=/dev/null
. "$CONF/edge.env"
for name in EDGE_NAME STATE_VOLUME HEADSCALE_VERSION EGRESS_VIA_RESERVED_IP; do
  [ -n "${!name:-}" ] || fail "$CONF/edge.env does not set $name"
done
HEADSCALE_DEB_SHA256="${HEADSCALE_DEB_SHA256:-}"
BACKUP_ENABLED="${BACKUP_ENABLED:-false}"

# ---------------------------------------------------------------------------
# Helpers of the steps that need the edge's settings (helpers.sh has the rest).
# ---------------------------------------------------------------------------

guard() {
  PYTHONPATH="$ROOT/usr/local/lib/homelab-tunnel" python3 -m homelab_tunnel.edge.upgrade_guard \
    --dir "$HS" "$@"
}

# upload_copy NAME: the pre-upgrade copy off the box too, with backup.env's settings.
# The bucket's settings come from backup.env through its one parser (edge/envfile.py).
upload_copy() (
  export PYTHONPATH="$ROOT/usr/local/lib/homelab-tunnel" HOMELAB_TUNNEL_BACKUP_ENV="$CONF/backup.env"
  prefix="$(python3 -m homelab_tunnel.edge.envfile export "$CONF/backup.env" BACKUP_PREFIX)" || exit 1
  eval "$prefix"
  key="$BACKUP_PREFIX/pre-upgrade/$1"
  python3 -m homelab_tunnel.edge.s3 head "$key" >/dev/null 2>&1 ||
    python3 -m homelab_tunnel.edge.s3 put "$key" "$HS/pre-upgrade/$1"
)

metadata() { curl -fsS --max-time 5 --retry 3 "$METADATA/$1"; }

installed() { [ "$(dpkg-query -W --showformat='${Status}' "$1" 2>/dev/null || true)" = "install ok installed" ]; }

enable_unit() { systemctl is-enabled --quiet "$1" || systemctl enable "$1"; }

# start_unit UNIT CHANGED: restart when its config changed, start when stopped.
start_unit() {
  if [ "$2" = 1 ]; then
    systemctl restart "$1"
  elif ! systemctl is-active --quiet "$1"; then
    systemctl start "$1"
  fi
}

# ---------------------------------------------------------------------------
# The steps, in the order of steps/order (or those named on the command line).
# ---------------------------------------------------------------------------
mapfile -t order < <(grep -v '^#' "$here/steps/order")
steps=("$@")
[ "${#steps[@]}" -gt 0 ] || steps=("${order[@]}")
for STEP in "${steps[@]}"; do
  [ -r "$here/steps/$STEP.sh" ] ||
    fail "no bootstrap step $STEP; the steps are: ${order[*]}"
done
for STEP in "${steps[@]}"; do
  # shellcheck source=/dev/null
  . "$here/steps/$STEP.sh"
done

if [ "${steps[-1]}" != "${order[-1]}" ]; then
  log "steps done: ${steps[*]}"
  exit 0
fi
reserved_ip="${reserved_ip:-$(metadata reserved_ip/ipv4/ip_address)}"
HOST_KEY="${HOST_KEY:-$(ssh-keygen -l -E sha256 -f "$ROOT/etc/ssh/ssh_host_ed25519_key.pub" | awk '{ print $2 }')}"
# The host key's fingerprint goes to the console too: what the operator compares
# with the one the tool trusted at first contact.
ready="edge ready: $EDGE_NAME on $reserved_ip, headscale $HEADSCALE_VERSION, tailscale $(tailscale version | sed -n 1p), ssh host key $HOST_KEY"
set_status "ready: $ready"
[ -z "$ATTEMPTS" ] || rm -f "$ATTEMPTS"
log "$ready"
