# bootstrap step: the metrics endpoint on the tailnet, for metrics.scrapers
# (with none, the service runs and listens nowhere until the config names one).
# shellcheck shell=bash
enable_unit homelab-tunnel-metrics.service
systemctl is-active --quiet homelab-tunnel-metrics.service || systemctl start homelab-tunnel-metrics.service
scrapers="$(sed -n 's/^METRICS_SCRAPERS=//p' "$CONF/metrics.env")"
step_done "metrics endpoint for: ${scrapers:-nobody (metrics.scrapers is empty)}"
