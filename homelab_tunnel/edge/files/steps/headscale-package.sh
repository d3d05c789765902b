# bootstrap step: the pinned Headscale release, verified before it is installed.
# shellcheck shell=bash
if [ "$(dpkg-query -W --showformat='${Version}' headscale 2>/dev/null || true)" != "$HEADSCALE_VERSION" ]; then
  install_release_deb "https://github.com/juanfont/headscale/releases/download/v${HEADSCALE_VERSION}" \
    "headscale_${HEADSCALE_VERSION}_linux_$(dpkg --print-architecture).deb" "$HEADSCALE_DEB_SHA256"
fi
chown -R headscale:headscale "$ROOT/var/lib/headscale"
step_done "headscale ${HEADSCALE_VERSION} installed (checksum verified)"
