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
# Each step is steps/<name>.sh, sourced here with the helpers below; it ends
# with step_done, which logs "homelab-tunnel: <step>: <what it did>" and keeps
# that line in /run/homelab-tunnel/bootstrap/<step>. Adding a step is a file
# and a line in steps/order; nothing is numbered.
#
# homelab-tunnel-bootstrap.service runs it at first boot (started by
# cloud-init) and again, with growing waits, until the edge is ready; it is
# safe to run again by hand (sudo /usr/local/lib/homelab-tunnel/bootstrap.sh):
# every step checks before it changes anything. It ends with one line, "edge
# ready" or "FAILED: why", also kept in $STATUS for the health agent.
set -euo pipefail

# Tests run the script against a scratch tree with fake system commands.
ROOT="${HOMELAB_TUNNEL_ROOT:-}"
METADATA="${HOMELAB_TUNNEL_METADATA:-http://169.254.169.254/metadata/v1}"
CONF="$ROOT/etc/homelab-tunnel"
HS="$ROOT/var/lib/headscale"
SYSTEMD="$ROOT/etc/systemd/system"
APT_OPTS=(-y -q -o DPkg::Lock::Timeout=600 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
RESERVED_IP_WAIT="${HOMELAB_TUNNEL_RESERVED_IP_WAIT:-600}"
# What the health agent reads: "ready: ..." or "failed: why".
STATUS="$ROOT/var/lib/homelab-tunnel/bootstrap-status"
# Set by homelab-tunnel-bootstrap.service: counts this boot's attempts.
ATTEMPTS="${HOMELAB_TUNNEL_BACKOFF:-}"
# Each step's outcome, by name, for people and tests (emptied at every boot).
STEPS="$ROOT/run/homelab-tunnel/bootstrap"

log() { printf 'homelab-tunnel: %s\n' "$*"; }
# step_done WHAT: the current step's one line, logged and kept under $STEPS.
step_done() {
  log "$STEP: $*"
  mkdir -p "$STEPS" && printf '%s\n' "$*" >"$STEPS/$STEP"
}
set_status() {
  mkdir -p "$(dirname "$STATUS")" && printf '%s\n' "$*" >"$STATUS.tmp" && mv -f "$STATUS.tmp" "$STATUS"
}
fail() {
  log "FAILED: $*" >&2
  # The step too, for the health agent's report: "failed at step packages: ...".
  set_status "failed${STEP:+ at step $STEP}: $*" || true
  exit 1
}
trap 'fail "line $LINENO: $BASH_COMMAND"' ERR
here="$(dirname "$(readlink -f "$0")")"

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
# Helpers: each one changes something only when it differs from what is wanted.
# ---------------------------------------------------------------------------

# install_file SRC DST MODE: copy when different; succeed only if it copied.
# Callers test the result, which switches off `set -e` inside: fail explicitly.
install_file() {
  if cmp -s "$1" "$2"; then return 1; fi
  install -D -m "$3" "$1" "$2" || fail "cannot write $2"
}

# write_file DST MODE < content: like install_file, for generated content.
write_file() {
  local tmp
  tmp="$(mktemp)" || fail "cannot create a temporary file"
  cat >"$tmp" || fail "cannot write $tmp"
  if install_file "$tmp" "$1" "$2"; then
    rm -f "$tmp"
    return 0
  fi
  rm -f "$tmp"
  return 1
}

# fstab_entry SOURCE TARGET REST: exactly one line mounting TARGET, replaced
# atomically when it differs, so a re-run or an older line never doubles it.
fstab_entry() {
  local fstab="$ROOT/etc/fstab" wanted="$1 $2 $3" tmp
  touch "$fstab"
  if grep -qxF -- "$wanted" "$fstab"; then return 0; fi
  tmp="$(mktemp "$fstab.XXXXXX")" || fail "cannot create a temporary file next to $fstab"
  awk -v target="$2" '$2 != target' "$fstab" >"$tmp" || fail "cannot read $fstab"
  printf '%s\n' "$wanted" >>"$tmp"
  chmod 0644 "$tmp"
  mv -f "$tmp" "$fstab" || fail "cannot write $fstab"
}

# fetch_keyring URL DEST [dearmor]: all or nothing; a partial download is
# never left behind, so the next attempt fetches it again.
fetch_keyring() {
  local url="$1" dest="$2" tmp
  [ -s "$dest" ] && return 0
  tmp="$(mktemp "$dest.XXXXXX")" || fail "cannot create a temporary file next to $dest"
  if ! curl -fsSL --retry 5 -o "$tmp" "$url" || [ ! -s "$tmp" ]; then
    rm -f "$tmp"
    fail "cannot download the signing key $url"
  fi
  if [ "${3:-}" = dearmor ]; then
    if ! gpg --batch --yes --dearmor -o "$tmp.gpg" "$tmp"; then
      rm -f "$tmp" "$tmp.gpg"
      fail "the signing key $url is not an OpenPGP key"
    fi
    mv -f "$tmp.gpg" "$tmp"
  fi
  chmod 0644 "$tmp"
  mv -f "$tmp" "$dest" || fail "cannot write $dest"
}

# install_quietly PACKAGE...: apt-get install, no service started by a package.
# Their postinst start them through deb-systemd-invoke, which asks policy-rc.d
# first: Headscale's would start on the package's example config (and make its
# keys and database with it), Caddy's on its welcome page, tailscaled before
# the edge's CA roots are trusted. Each step starts its own service once its
# config is in place; the units stay enabled for the next boot.
install_quietly() {
  local policy="$ROOT/usr/sbin/policy-rc.d" held=0 status=0
  if [ ! -e "$policy" ]; then
    mkdir -p "$(dirname "$policy")"
    printf '#!/bin/sh\n# homelab-tunnel bootstrap is installing: no service starts now.\nexit 101\n' >"$policy"
    chmod 0755 "$policy"
    held=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install "${APT_OPTS[@]}" "$@" || status=$?
  [ "$held" = 0 ] || rm -f "$policy"
  return "$status"
}

# install_release_deb URL DEB [SHA256]: install DEB from the GitHub release at
# URL only if it matches the release's checksums.txt (and SHA256, when given).
install_release_deb() {
  download="$(mktemp -d)"
  trap 'rm -rf "$download"' EXIT
  curl -fsSL --retry 5 -o "$download/$2" "$1/$2"
  curl -fsSL --retry 5 -o "$download/checksums.txt" "$1/checksums.txt"
  grep -E "^[0-9a-f]{64}  ${2}\$" "$download/checksums.txt" >"$download/expected" ||
    fail "$2 is not listed in the release's checksums.txt"
  (cd "$download" && sha256sum --check --quiet expected) ||
    fail "$2 does not match the release's checksums.txt"
  if [ -n "${3:-}" ]; then
    echo "$3  $download/$2" | sha256sum --check --quiet ||
      fail "$2 does not match headscale.deb_sha256 from the config"
  fi
  install_quietly "$download/$2"
  rm -rf "$download"
}

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
