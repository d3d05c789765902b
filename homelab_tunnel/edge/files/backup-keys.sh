#!/usr/bin/env bash
# Upload Headscale's key files that changed, age-encrypted to the owner's
# recipients and to the edge's own (derived from its Spaces secret), then the
# manifest restore-state.sh checks them against. Run by
# homelab-tunnel-backup-keys.service: on change (.path) and daily (.timer).
set -euo pipefail

ROOT="${HOMELAB_TUNNEL_ROOT:-}"
HS="$ROOT/var/lib/headscale"
DONE="$ROOT/var/lib/homelab-tunnel/backup-keys"
export PYTHONPATH="$ROOT/usr/local/lib/homelab-tunnel"
s3() { python3 -m homelab_tunnel.edge.s3 "$@"; }

while IFS='=' read -r name value; do
  case "$name" in BACKUP_*) export "$name=$value" ;; esac
done <"$ROOT/etc/homelab-tunnel/backup.env"
P="$BACKUP_PREFIX/keys"
umask 077
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$DONE"

printf '%s' "$BACKUP_SECRET_ACCESS_KEY" | python3 -m homelab_tunnel.edge.agekey identity >"$work/id"
read -ra owners <<<"${BACKUP_RECIPIENTS:-}"
{ age-keygen -y "$work/id" && printf '%s\n' "${owners[@]}"; } | sort -u >"$work/recipients"
# Age output differs on every run: compare plaintext and recipients, never ciphertext.
recipients="$(sha256sum <"$work/recipients" | cut -c1-64)"
sent=0
for name in noise_private.key derp_server_private.key; do
  [ -f "$HS/$name" ] || continue
  sum="$(sha256sum <"$HS/$name" | cut -c1-64)"
  printf '%s  %s\n' "$sum" "$name" >>"$work/manifest"
  if [ "$(cat "$DONE/$name" 2>/dev/null)" = "$sum $recipients" ] && s3 head "$P/$name.age" >/dev/null; then
    continue
  fi
  age -R "$work/recipients" -o "$work/$name.age" "$HS/$name"
  s3 put "$P/$name.age" "$work/$name.age"
  echo "$sum $recipients" >"$DONE/$name"
  sent=$((sent + 1))
done
if [ -s "$work/manifest" ] && { [ "$sent" -gt 0 ] || ! cmp -s "$work/manifest" "$DONE/manifest"; }; then
  s3 put "$P/manifest.sha256" "$work/manifest"
  cp "$work/manifest" "$DONE/manifest"
fi
echo "backup-keys: $sent key file(s) uploaded to s3://$BACKUP_BUCKET/$P/"
