# bootstrap step: a blank volume gets Headscale's database and keys back from
# the backup bucket, before anything runs Headscale: it would make fresh ones.
# shellcheck shell=bash
if [ "$BACKUP_ENABLED" = true ]; then
  restored="$("$here/restore-state.sh" 2>&1)" || fail "restore from the backup bucket: ${restored##*FAILED: }"
  step_done "${restored##*$'\n'}"
else
  step_done "backups off: nothing restored"
fi
