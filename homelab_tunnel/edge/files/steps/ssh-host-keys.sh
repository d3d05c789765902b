# bootstrap step: the ssh host keys live on the state volume, so every droplet
# on it answers with the keys the operator's known_hosts already holds. The
# first droplet saves the keys cloud-init made for it; a replacement installs
# the saved ones over its own new keys (until this step, it answers with those:
# ssh refuses them as changed, it never accepts them). The ed25519 fingerprint
# ends up in the "edge ready" line, on the droplet's console, for the operator
# to compare with the one the tool trusted at first contact.
# shellcheck shell=bash
state="${state:-$(findmnt -n -o TARGET --first-only --source "$ROOT/dev/disk/by-id/scsi-0DO_Volume_${STATE_VOLUME}" || true)}"
[ -n "$state" ] || fail "state volume ${STATE_VOLUME} is not mounted: no place for the ssh host keys"
kept="$state/ssh-host-keys"
if [ -s "$kept/ssh_host_ed25519_key" ]; then
  keys_changed=0
  for key in "$kept"/ssh_host_*_key; do
    name="$(basename "$key")"
    install_file "$key" "$ROOT/etc/ssh/$name" 0600 && keys_changed=1
    install_file "$key.pub" "$ROOT/etc/ssh/$name.pub" 0644 && keys_changed=1
  done
  if [ "$keys_changed" = 1 ]; then
    # sshd re-executes itself on reload and reads its host keys again.
    systemctl try-reload-or-restart ssh.service
    kept_how="installed from the volume"
  else
    kept_how="kept on the volume"
  fi
else
  [ -s "$ROOT/etc/ssh/ssh_host_ed25519_key" ] ||
    fail "no ssh host key in /etc/ssh to keep (cloud-init's ssh module makes them at first boot)"
  # All or nothing: a half-copied folder is never taken for the droplet's keys.
  staging="$(mktemp -d "$state/.ssh-host-keys.XXXXXX")" || fail "cannot write to the state volume"
  cp -p "$ROOT"/etc/ssh/ssh_host_*_key "$ROOT"/etc/ssh/ssh_host_*_key.pub "$staging/"
  chmod 0700 "$staging"
  rm -rf "$kept"
  mv -T "$staging" "$kept" || fail "cannot keep the ssh host keys on the state volume"
  kept_how="saved to the volume"
fi
HOST_KEY="$(ssh-keygen -l -E sha256 -f "$ROOT/etc/ssh/ssh_host_ed25519_key.pub" | awk '{ print $2 }')"
step_done "ssh host key $HOST_KEY (ED25519) $kept_how"
