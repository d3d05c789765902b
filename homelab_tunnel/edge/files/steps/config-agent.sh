# bootstrap step: from now on the config agent applies each new version
# Terraform writes to the config bucket, in place.
# shellcheck shell=bash
enable_unit homelab-tunnel-config.service
systemctl is-active --quiet homelab-tunnel-config.service || systemctl start homelab-tunnel-config.service
step_done "config agent watching s3://$(sed -n 's/^CHANNEL_BUCKET=//p' "$CONF/channel.env")/$(sed -n 's/^CHANNEL_KEY=//p' "$CONF/channel.env")"
