# bootstrap step: never a Headscale that skips a minor release (it would migrate
# the database for good); a consistent copy first whenever the version changes.
# shellcheck shell=bash
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
step_done "upgrade guard: $verdict"
