# Sourced by bootstrap.sh (steps use these too), and by the tests that run its
# download-and-verify code against the lab's package mirror. Each helper changes
# something only when it differs from what is wanted, and stops the run with
# one FAILED line (kept in $STATUS for the health agent) when it cannot.
# shellcheck shell=bash
set -euo pipefail

# Tests run the script against a scratch tree with fake system commands.
ROOT="${HOMELAB_TUNNEL_ROOT:-}"
APT_OPTS=(-y -q -o DPkg::Lock::Timeout=600 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
# What the health agent reads: "ready: ..." or "failed at step NAME: why".
STATUS="$ROOT/var/lib/homelab-tunnel/bootstrap-status"
# Each step's outcome, by name, for people and tests (emptied at every boot).
STEPS="$ROOT/run/homelab-tunnel/bootstrap"

log() { printf 'homelab-tunnel: %s\n' "$*"; }
# step_done WHAT: the current step's one line, logged and kept under $STEPS.
step_done() {
  log "${STEP:?step_done outside a step}: $*"
  mkdir -p "$STEPS" && printf '%s\n' "$*" >"$STEPS/$STEP"
}
set_status() {
  mkdir -p "$(dirname "$STATUS")" && printf '%s\n' "$*" >"$STATUS.tmp" && mv -f "$STATUS.tmp" "$STATUS"
}
# fail WHY: the run's last line, and the status the health agent reports.
fail() {
  log "FAILED: $*" >&2
  # The step too, for the health agent's report: "failed at step packages: ...".
  set_status "failed${STEP:+ at step $STEP}: $*" || true
  exit 1
}

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
