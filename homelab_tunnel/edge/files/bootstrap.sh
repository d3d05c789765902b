#!/usr/bin/env bash
# Bootstrap the homelab-tunnel edge: state volume, current Tailscale and Caddy,
# Headscale's state restored from the backup bucket on a blank volume, the
# pinned Headscale (never one that skips a minor release), then join the edge
# to its own tailnet, stream backups and start serving.
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

log() { printf 'homelab-tunnel: %s\n' "$*"; }
set_status() {
  mkdir -p "$(dirname "$STATUS")" && printf '%s\n' "$*" >"$STATUS.tmp" && mv -f "$STATUS.tmp" "$STATUS"
}
fail() {
  log "FAILED: $*" >&2
  set_status "failed: $*" || true
  exit 1
}
trap 'fail "line $LINENO: $BASH_COMMAND"' ERR

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
here="$(dirname "$(readlink -f "$0")")"

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
  DEBIAN_FRONTEND=noninteractive apt-get install "${APT_OPTS[@]}" "$download/$2"
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
# 0. The health timer first: a failure in any later step is reported, not silent.
#    (cloud-init's runcmd reloaded systemd after writing the units.)
# ---------------------------------------------------------------------------
enable_unit homelab-tunnel-health.timer
systemctl is-active --quiet homelab-tunnel-health.timer || systemctl start homelab-tunnel-health.timer
log "0/9 health timer on (journalctl -u homelab-tunnel-health)"

# ---------------------------------------------------------------------------
# 1. State volume: everything the edge must keep lives here.
# ---------------------------------------------------------------------------
device="$ROOT/dev/disk/by-id/scsi-0DO_Volume_${STATE_VOLUME}"
for _ in $(seq 1 30); do
  [ -e "$device" ] && break
  sleep 2
done
[ -e "$device" ] || fail "state volume ${STATE_VOLUME} is not attached ($device missing); refusing to run without persistent state"

# Formatted only when proven blank: readable, and no signature in blkid's
# low-level probe. blkid exits 2 both for "nothing found" and for "cannot
# open", and 8 when two signatures contradict each other (util-linux
# misc-utils/blkid.c): an empty answer alone proves nothing.
read_bytes="$(head -c 65536 "$device" 2>/dev/null | wc -c)" || read_bytes=0
[ "$read_bytes" = 65536 ] ||
  fail "cannot read the state volume $device; refusing to format or mount it (dmesg; the volume in the control panel)"
probed=0
signature="$(blkid -p -o export "$device" 2>&1)" || probed=$?
volume_type="$(sed -n 's/^TYPE=//p; s/^PTTYPE=/partition table /p' <<<"$signature" | head -n1)"
case "$probed:$volume_type" in
2:)
  log "state volume is blank (readable, no signature): formatting ext4"
  mkfs.ext4 -q -L edge-state "$device"
  ;;
0:ext4) ;;
0:*) fail "state volume $device holds ${volume_type:-something blkid cannot name}, not the edge's ext4; refusing to format or mount it" ;;
8:*) fail "state volume $device carries more than one signature (wipefs -n $device lists them); refusing to format or mount it" ;;
*) fail "blkid cannot probe the state volume $device (exit $probed: ${signature##*$'\n'}); refusing to format or mount it" ;;
esac
# DigitalOcean may have mounted it already (under /mnt/<name with underscores>).
state="$(findmnt -n -o TARGET --first-only --source "$device" || true)"
if [ -z "$state" ]; then
  state="$ROOT/mnt/${STATE_VOLUME}"
  mkdir -p "$state"
  fstab_entry "$device" "$state" "ext4 defaults,nofail,discard,noatime 0 2"
  mount "$state"
fi

# volume dir : system path. A replaced droplet finds the same keys, nodes and certificates.
# nofail: a lost volume must not hold the boot in emergency mode (no sshd);
# RequiresMountsFor in the services' drop-ins keeps them from starting instead.
for pair in headscale-lib:/var/lib/headscale headscale-etc:/etc/headscale caddy:/var/lib/caddy tailscale:/var/lib/tailscale; do
  src="$state/${pair%%:*}"
  dst="$ROOT${pair#*:}"
  mkdir -p "$src" "$dst"
  fstab_entry "$src" "$dst" "none bind,nofail,x-systemd.requires-mounts-for=$state 0 0"
  mountpoint -q "$dst" || mount --bind "$src" "$dst"
done
log "1/9 state volume ${STATE_VOLUME} mounted at $state"

# ---------------------------------------------------------------------------
# 2. Current Tailscale and Caddy from their official repositories.
# ---------------------------------------------------------------------------
# shellcheck source=/dev/null
codename="$(. "$ROOT/etc/os-release" && echo "$VERSION_CODENAME")"
keyrings="$ROOT/usr/share/keyrings"
sources_changed=0
fetch_keyring "https://pkgs.tailscale.com/stable/ubuntu/${codename}.noarmor.gpg" \
  "$keyrings/tailscale-archive-keyring.gpg"
fetch_keyring https://dl.cloudsmith.io/public/caddy/stable/gpg.key \
  "$keyrings/caddy-stable-archive-keyring.gpg" dearmor
write_file "$ROOT/etc/apt/sources.list.d/tailscale.list" 0644 <<EOF && sources_changed=1
deb [signed-by=/usr/share/keyrings/tailscale-archive-keyring.gpg] https://pkgs.tailscale.com/stable/ubuntu ${codename} main
EOF
write_file "$ROOT/etc/apt/sources.list.d/caddy-stable.list" 0644 <<'EOF' && sources_changed=1
deb [signed-by=/usr/share/keyrings/caddy-stable-archive-keyring.gpg] https://dl.cloudsmith.io/public/caddy/stable/deb/debian any-version main
EOF
packages=(tailscale caddy unattended-upgrades)
[ "$BACKUP_ENABLED" != true ] || packages+=(age)
missing=()
for package in "${packages[@]}"; do
  installed "$package" || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$sources_changed" = 1 ] || [ ! -d "$ROOT/var/lib/apt/lists/partial" ]; then
    apt-get update -q -o DPkg::Lock::Timeout=600
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install "${APT_OPTS[@]}" "${missing[@]}"
  # The package starts Caddy on its example config; ours starts in step 5.
  systemctl stop caddy
fi
# A private ACME CA (tls.acme_ca): trust its roots system-wide, so tailscaled
# reaches the embedded DERP through the certificate Caddy got from it.
trusted="$ROOT/usr/local/share/ca-certificates/homelab-tunnel"
if [ -s "$CONF/ca-roots.pem" ]; then
  split="$(mktemp -d)"
  awk -v dir="$split" '/-----BEGIN CERTIFICATE-----/ { n++ } n { print > (dir "/root-" n ".crt") }' \
    "$CONF/ca-roots.pem"
  if ! diff -r "$split" "$trusted" >/dev/null 2>&1; then
    rm -rf "$trusted" && mkdir -p "$trusted" && cp "$split"/*.crt "$trusted"/
    update-ca-certificates >/dev/null
  fi
  rm -rf "$split"
fi
if [ "$BACKUP_ENABLED" = true ] &&
  [ "$(dpkg-query -W --showformat='${Version}' litestream 2>/dev/null || true)" != "$LITESTREAM_VERSION" ]; then
  case "$(dpkg --print-architecture)" in
  amd64) asset=x86_64 ;;
  arm64) asset=arm64 ;;
  *) fail "Litestream publishes no package for $(dpkg --print-architecture)" ;;
  esac
  install_release_deb "https://github.com/benbjohnson/litestream/releases/download/v${LITESTREAM_VERSION}" \
    "litestream-${LITESTREAM_VERSION}-linux-${asset}.deb"
fi
backups=""
[ "$BACKUP_ENABLED" != true ] || backups="; litestream $LITESTREAM_VERSION (checksum verified) and age for backups"
log "2/9 tailscale $(dpkg-query -W --showformat='${Version}' tailscale) and caddy $(dpkg-query -W --showformat='${Version}' caddy) installed; unattended upgrades keep them current$backups"

# ---------------------------------------------------------------------------
# 3. A blank volume gets Headscale's database and keys back from the bucket,
#    before anything runs Headscale: it would make fresh ones.
# ---------------------------------------------------------------------------
if [ "$BACKUP_ENABLED" = true ]; then
  restored="$("$here/restore-state.sh" 2>&1)" || fail "restore from the backup bucket: ${restored##*FAILED: }"
  log "3/9 ${restored##*$'\n'}"
else
  log "3/9 backups off: nothing restored"
fi

# ---------------------------------------------------------------------------
# 4. Never a Headscale that skips a minor release: it would migrate the
#    database for good. A consistent copy first whenever the version changes.
# ---------------------------------------------------------------------------
verdict="$(guard check "$HEADSCALE_VERSION")" || fail "$verdict"
previous="$(guard show)"
previous="${previous%% *}"
if [ -e "$HS/db.sqlite" ] && [ "$previous" != "$HEADSCALE_VERSION" ]; then
  copy="$(find "$HS/pre-upgrade" -name "$previous-to-$HEADSCALE_VERSION-*.sqlite" -printf '%f\n' 2>/dev/null |
    sort | tail -n1)" || true
  if [ -z "$copy" ]; then
    copy="$previous-to-$HEADSCALE_VERSION-$(date -u +%Y%m%dT%H%M%SZ).sqlite"
    guard copy "$HS/pre-upgrade/$copy" >/dev/null || fail "cannot copy $HS/db.sqlite before the upgrade"
  fi
  if [ "$BACKUP_ENABLED" = true ]; then
    upload_copy "$copy" || fail "cannot upload the pre-upgrade copy $copy to the backup bucket"
  fi
  verdict="$verdict; database copied to $HS/pre-upgrade/$copy"
fi
log "4/9 upgrade guard: $verdict"

# ---------------------------------------------------------------------------
# 5. Headscale: the pinned release, verified before it is installed.
# ---------------------------------------------------------------------------
if [ "$(dpkg-query -W --showformat='${Version}' headscale 2>/dev/null || true)" != "$HEADSCALE_VERSION" ]; then
  install_release_deb "https://github.com/juanfont/headscale/releases/download/v${HEADSCALE_VERSION}" \
    "headscale_${HEADSCALE_VERSION}_linux_$(dpkg --print-architecture).deb" "$HEADSCALE_DEB_SHA256"
fi
chown -R headscale:headscale "$ROOT/var/lib/headscale"
log "5/9 headscale ${HEADSCALE_VERSION} installed (checksum verified)"

# ---------------------------------------------------------------------------
# 6. Headscale up (its version stamped on the volume), then the edge joins it.
# ---------------------------------------------------------------------------
headscale_changed=0
install_file "$CONF/headscale.yaml" "$ROOT/etc/headscale/config.yaml" 0644 && headscale_changed=1
install_file "$CONF/policy.hujson" "$ROOT/etc/headscale/policy.hujson" 0644 && headscale_changed=1
# The embedded DERP advertises the droplet's own addresses (see config.yaml).
ipv4="$(metadata interfaces/public/0/ipv4/address)"
ipv6="$(metadata interfaces/public/0/ipv6/address || true)"
if write_file "$SYSTEMD/headscale.service.d/20-derp-address.conf" 0644 <<EOF; then
# Written by homelab-tunnel bootstrap from the metadata service.
[Service]
Environment=HEADSCALE_DERP_SERVER_IPV4=${ipv4}
Environment=HEADSCALE_DERP_SERVER_IPV6=${ipv6}
EOF
  # New on every droplet: also picks up the units cloud-init wrote at boot.
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

EDGE_NAME="$EDGE_NAME" "$here/join-edge.sh" ||
  fail "the edge could not join its own Headscale (tailscale status; journalctl -u tailscaled)"
log "6/9 headscale running (version stamped on the volume); edge joined the tailnet as $EDGE_NAME"

# ---------------------------------------------------------------------------
# 7. Backups: the database within a second of each write, key files on change.
# ---------------------------------------------------------------------------
if [ "$BACKUP_ENABLED" = true ]; then
  started=0
  for unit in homelab-tunnel-litestream.service homelab-tunnel-backup-keys.path \
    homelab-tunnel-backup-keys.timer homelab-tunnel-seal.timer; do
    enable_unit "$unit"
    if ! systemctl is-active --quiet "$unit"; then
      systemctl start "$unit"
      started=1
    fi
  done
  # The .path unit only sees changes from now on, and Headscale wrote the key
  # files (or restore-state.sh brought them back) before it started: back them
  # up now, not when the timer first fires a minute or two later (the key
  # backup then seals the database).
  [ "$started" = 0 ] || systemctl start --no-block homelab-tunnel-backup-keys.service
  log "7/9 backups on: Litestream streams the database, key files go on change and daily, seals every 30 s"
else
  log "7/9 backups off (backup.enabled in the config)"
fi

# ---------------------------------------------------------------------------
# 8. Caddy, once the reserved IP answers, so ACME's first attempt succeeds.
# ---------------------------------------------------------------------------
caddy_changed=0
install_file "$CONF/Caddyfile" "$ROOT/etc/caddy/Caddyfile" 0644 && caddy_changed=1
chown -R caddy:caddy "$ROOT/var/lib/caddy"
caddy validate --config "$ROOT/etc/caddy/Caddyfile" --adapter caddyfile >/dev/null 2>&1 ||
  fail "caddy rejected /etc/caddy/Caddyfile (caddy validate --config /etc/caddy/Caddyfile)"
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
start_unit caddy "$caddy_changed"
log "8/9 caddy serving on reserved IP $reserved_ip"

# ---------------------------------------------------------------------------
# 9. Optional egress from the reserved IP.
# ---------------------------------------------------------------------------
if [ "$EGRESS_VIA_RESERVED_IP" = true ]; then
  enable_unit homelab-tunnel-egress.service
  systemctl is-active --quiet homelab-tunnel-egress.service || systemctl start homelab-tunnel-egress.service
fi
log "9/9 egress via reserved IP: $EGRESS_VIA_RESERVED_IP"

ready="edge ready: $EDGE_NAME on $reserved_ip, headscale $HEADSCALE_VERSION, tailscale $(tailscale version | sed -n 1p)"
set_status "ready: $ready"
[ -z "$ATTEMPTS" ] || rm -f "$ATTEMPTS"
log "$ready"
