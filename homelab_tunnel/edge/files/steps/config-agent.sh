# bootstrap step: from now on the config agent applies each new version
# Terraform writes to the config bucket, in place.
# shellcheck shell=bash
enable_unit homelab-tunnel-config.service
# --no-block: the agent's unit is ordered after this bootstrap unit (it must
# not apply a config while bootstrap installs one), so a blocking start from
# inside bootstrap would wait for itself forever. It starts once bootstrap ends.
systemctl is-active --quiet homelab-tunnel-config.service ||
  systemctl start --no-block homelab-tunnel-config.service
step_done "config agent watching s3://$(sed -n 's/^CHANNEL_BUCKET=//p' "$CONF/channel.env")/$(sed -n 's/^CHANNEL_KEY=//p' "$CONF/channel.env") (from the end of bootstrap)"
