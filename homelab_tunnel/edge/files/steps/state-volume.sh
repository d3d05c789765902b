# bootstrap step: the state volume, where everything the edge must keep lives.
# shellcheck shell=bash
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
