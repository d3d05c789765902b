#!/usr/bin/env bash
# Bring Headscale's state back from the backup bucket: the database through
# Litestream, the key files through age (decrypted with the edge's identity,
# checked against the uploaded manifest).
#   restore-state.sh                     bootstrap: only on a blank volume
#   restore-state.sh --list              the restore points in the bucket
#   restore-state.sh --at TIME [--force] that point in time (RFC 3339), by hand
set -euo pipefail

ROOT="${HOMELAB_TUNNEL_ROOT:-}"
CONF="$ROOT/etc/homelab-tunnel"
HS="$ROOT/var/lib/headscale"
DB="$HS/db.sqlite"
MARKER="$HS/.homelab-tunnel-initialized"
RESTORED="$ROOT/var/lib/homelab-tunnel/restored"
KEYS=(noise_private.key derp_server_private.key)
export PYTHONPATH="$ROOT/usr/local/lib/homelab-tunnel"

say() { printf 'restore-state: %s\n' "$*"; }
die() {
  say "FAILED: $*" >&2
  exit 1
}
s3() { python3 -m homelab_tunnel.edge.s3 "$@"; }
litestream() { env -u AWS_CA_BUNDLE litestream "$1" -config "$CONF/litestream.yml" "${@:2}"; }

[ -r "$CONF/backup.env" ] || die "no $CONF/backup.env: backups are off in the config"
# Literal KEY=value lines (the recipients hold blanks): read, never sourced.
while IFS='=' read -r name value; do
  case "$name" in BACKUP_*) export "$name=$value" ;; esac
done <"$CONF/backup.env"
P="$BACKUP_PREFIX"
umask 077
work="$(mktemp -d)"
trap 'rm -rf "$work"; rm -f "$HS/.restoring.sqlite"' EXIT

# restore_db OUT [TIME]: the database (latest, or as of TIME) into OUT, if backed up.
restore_db() {
  rm -f "$1"
  litestream restore -if-replica-exists -integrity-check quick -o "$1" ${2:+-timestamp "$2"} \
    "$DB" >"$work/litestream.log" 2>&1 || die "litestream restore: $(tail -n1 "$work/litestream.log")"
}

# fetch_keys DIR: the backed-up key files, decrypted and checked, into DIR.
fetch_keys() {
  local rc=0 name
  s3 get "$P/keys/manifest.sha256" "$work/manifest" || rc=$?
  [ "$rc" != 3 ] || return 0
  [ "$rc" = 0 ] || die "cannot read $P/keys/manifest.sha256 from the bucket"
  [ -s "$work/manifest" ] || return 0
  printf '%s' "$BACKUP_SECRET_ACCESS_KEY" | python3 -m homelab_tunnel.edge.agekey identity >"$work/id"
  mkdir -p "$1"
  for name in "${KEYS[@]}"; do
    grep -q "  $name\$" "$work/manifest" || continue
    s3 get "$P/keys/$name.age" "$work/$name.age" || die "cannot download $P/keys/$name.age"
    age -d -i "$work/id" -o "$1/$name" "$work/$name.age" ||
      die "$name.age is not encrypted to this edge's key (Spaces key rotated? decrypt it with your own age identity)"
  done
  (cd "$1" && sha256sum --check --quiet --strict "$work/manifest" >/dev/null 2>&1) ||
    die "the key files do not match $P/keys/manifest.sha256"
}

# record WHAT: for the health agent, which reports it for a day.
record() {
  mkdir -p "$(dirname "$RESTORED")"
  printf '%s %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >"$RESTORED"
}

bootstrap() {
  if [ -e "$MARKER" ]; then
    say "state volume already initialized; nothing restored"
    return
  fi
  if [ -e "$DB" ]; then
    touch "$MARKER"
    say "the state volume holds a database; nothing restored"
    return
  fi
  mkdir -p "$HS"
  restore_db "$HS/.restoring.sqlite"
  fetch_keys "$work/keys"
  local what=() name
  for name in "${KEYS[@]}"; do
    if [ -e "$work/keys/$name" ] && [ ! -e "$HS/$name" ]; then
      install -m 0600 "$work/keys/$name" "$HS/$name"
      what+=("$name")
    fi
  done
  if [ -e "$HS/.restoring.sqlite" ]; then
    mv "$HS/.restoring.sqlite" "$DB"
    what=(database "${what[@]}")
    [ -e "$HS/noise_private.key" ] || what+=("(no noise key: clients must restart tailscaled once)")
  fi
  touch "$MARKER"
  if [ "${#what[@]}" = 0 ]; then
    say "nothing to restore: s3://$BACKUP_BUCKET/$P holds no backup yet (first deploy)"
    return
  fi
  record "${what[*]}"
  say "restored ${what[*]} from s3://$BACKUP_BUCKET/$P"
}

list() {
  local ltx from to
  ltx="$(litestream ltx -level all "$DB" | awk 'NR > 1 { print $1, $5 }' | sort -k2)" ||
    die "cannot list the database backup in s3://$BACKUP_BUCKET/$P/db"
  from="$(awk '$1 == 9 { print $2; exit }' <<<"$ltx")"
  from="${from:-$(awk '{ print $2; exit }' <<<"$ltx")}"
  to="$(awk 'END { print $2 }' <<<"$ltx")"
  echo "database: ${from:+from $from to $to}${from:-no backup}"
  s3 list "$P/keys/" | sed 's/^/keys: /'
  s3 list "$P/pre-upgrade/" | sed 's/^/pre-upgrade copy: /'
}

at() {
  local when="$1" aside name
  [[ "$when" =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$ ]] ||
    die "--at takes an RFC 3339 time, e.g. 2026-11-29T21:00:00Z (restore-state.sh --list shows the range)"
  if [ -e "$DB" ] && [ "$2" != --force ]; then
    die "the volume holds a database; add --force to move it aside (to $HS/pre-restore/) and restore $when"
  fi
  restore_db "$HS/.restoring.sqlite" "$when"
  [ -e "$HS/.restoring.sqlite" ] || die "the bucket holds no database backup at or before $when"
  fetch_keys "$work/keys"
  # shellcheck source=/dev/null
  HEADSCALE_VERSION="$(. "$CONF/edge.env" && echo "$HEADSCALE_VERSION")"
  systemctl stop homelab-tunnel-litestream homelab-tunnel-backup-keys.path headscale
  aside="$HS/pre-restore/$(date -u +%Y%m%dT%H%M%SZ)"
  mkdir -p "$aside"
  for name in "$DB" "$DB-wal" "$DB-shm" "$HS/.db.sqlite-litestream" "$HS/.homelab-tunnel-headscale-version"; do
    if [ -e "$name" ]; then mv "$name" "$aside/"; fi
  done
  for name in "${KEYS[@]}"; do
    if [ -e "$work/keys/$name" ]; then
      if [ -e "$HS/$name" ]; then cp -p "$HS/$name" "$aside/"; fi
      install -m 0600 "$work/keys/$name" "$HS/$name"
    fi
  done
  mv "$HS/.restoring.sqlite" "$DB"
  chown -R headscale:headscale "$HS"
  touch "$MARKER"
  record "database as of $when (by hand; the previous state is in $aside)"
  python3 -m homelab_tunnel.edge.upgrade_guard --dir "$HS" check "$HEADSCALE_VERSION" ||
    die "restored, but Headscale $HEADSCALE_VERSION must not start on it (above); the previous state is in $aside"
  systemctl start headscale homelab-tunnel-litestream homelab-tunnel-backup-keys.path
  say "restored the database as of $when; the previous state is in $aside"
}

case "${1:-}" in
"") bootstrap ;;
--list) list ;;
--at) at "${2:-}" "${3:-}" ;;
*) die "usage: restore-state.sh [--list | --at TIME [--force]]" ;;
esac
