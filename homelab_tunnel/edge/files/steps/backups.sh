# bootstrap step: backups, the database within a second of each write, the key
# files on change.
# shellcheck shell=bash
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
  step_done "backups on: Litestream streams the database, key files go on change and daily, seals every 30 s"
else
  step_done "backups off (backup.enabled in the config)"
fi
