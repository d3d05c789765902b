# bootstrap step: current Tailscale and Caddy from their official repositories
# (and, with backups, age and Litestream's release .deb, checksum verified).
# shellcheck shell=bash
# shellcheck source=/dev/null
distro="$(. "$ROOT/etc/os-release" && echo "$ID")"
# shellcheck source=/dev/null
codename="$(. "$ROOT/etc/os-release" && echo "$VERSION_CODENAME")"
keyrings="$ROOT/usr/share/keyrings"
sources_changed=0
fetch_keyring "https://pkgs.tailscale.com/stable/${distro}/${codename}.noarmor.gpg" \
  "$keyrings/tailscale-archive-keyring.gpg"
fetch_keyring https://dl.cloudsmith.io/public/caddy/stable/gpg.key \
  "$keyrings/caddy-stable-archive-keyring.gpg" dearmor
write_file "$ROOT/etc/apt/sources.list.d/tailscale.list" 0644 <<EOF && sources_changed=1
deb [signed-by=/usr/share/keyrings/tailscale-archive-keyring.gpg] https://pkgs.tailscale.com/stable/${distro} ${codename} main
EOF
write_file "$ROOT/etc/apt/sources.list.d/caddy-stable.list" 0644 <<'EOF' && sources_changed=1
deb [signed-by=/usr/share/keyrings/caddy-stable-archive-keyring.gpg] https://dl.cloudsmith.io/public/caddy/stable/deb/debian any-version main
EOF
# nftables and conntrack: the forwarded ports' table and its flows (port_agent.py).
packages=(tailscale caddy unattended-upgrades nftables conntrack)
[ "$BACKUP_ENABLED" != true ] || packages+=(age)
missing=()
for package in "${packages[@]}"; do
  installed "$package" || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$sources_changed" = 1 ] || [ ! -d "$ROOT/var/lib/apt/lists/partial" ]; then
    apt-get update -q -o DPkg::Lock::Timeout=600
  fi
  # No package starts its service here: Caddy starts in the caddy step on our
  # Caddyfile, tailscaled in the headscale step once the CA roots below are trusted.
  install_quietly "${missing[@]}"
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
step_done "tailscale $(dpkg-query -W --showformat='${Version}' tailscale) and caddy $(dpkg-query -W --showformat='${Version}' caddy) installed; unattended upgrades keep them current$backups"
