# bootstrap step: the health timer first, so a failure in any later step is
# reported, not silent. (cloud-init's runcmd reloaded systemd after writing the
# units; the software loader did again after unpacking the rest.)
# shellcheck shell=bash
enable_unit homelab-tunnel-health.timer
systemctl is-active --quiet homelab-tunnel-health.timer || systemctl start homelab-tunnel-health.timer
step_done "health timer on (journalctl -u homelab-tunnel-health); metadata service closed to non-root processes"
