# bootstrap step: the state volume, where everything the edge must keep lives.
# shellcheck shell=bash
device="$ROOT/dev/disk/by-id/scsi-0DO_Volume_${STATE_VOLUME}"
for _ in $(seq 1 30); do
  [ -e "$device" ] && break
  sleep 2
done
[ -e "$device" ] || fail "state volume ${STATE_VOLUME} is not attached ($device missing); refusing to run without persistent state"

if [ -z "$(blkid -o value -s TYPE "$device" || true)" ]; then
  log "state volume is blank: formatting ext4"
  mkfs.ext4 -q -L edge-state "$device"
fi
# DigitalOcean may have mounted it already (under /mnt/<name with underscores>).
state="$(findmnt -n -o TARGET --first-only --source "$device" || true)"
if [ -z "$state" ]; then
  state="$ROOT/mnt/${STATE_VOLUME}"
  mkdir -p "$state"
  fstab_entry "$device" "$state" "ext4 defaults,nofail,discard,noatime 0 2"
  mount "$state"
fi

# state-volume.list: "<folder on the volume> <system path>". A replaced droplet
# finds the same keys, nodes, certificates and config there. nofail: a lost
# volume must not hold the boot in emergency mode (no sshd); RequiresMountsFor
# in the services' drop-ins keeps them from starting instead.
while read -r folder path; do
  case "$folder" in '' | '#'*) continue ;; esac
  src="$state/$folder"
  dst="$ROOT$path"
  mkdir -p "$src" "$dst"
  fstab_entry "$src" "$dst" "none bind,nofail,x-systemd.requires-mounts-for=$state 0 0"
  mountpoint -q "$dst" || mount --bind "$src" "$dst"
done <"$here/state-volume.list"
step_done "state volume ${STATE_VOLUME} mounted at $state"
