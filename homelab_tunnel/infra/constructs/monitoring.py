"""DigitalOcean monitor alerts for the edge droplet."""

from __future__ import annotations

from cdktf_cdktf_provider_digitalocean.droplet import Droplet
from cdktf_cdktf_provider_digitalocean.monitor_alert import MonitorAlert, MonitorAlertAlerts
from constructs import Construct

# (logical id, metric, threshold %, description). Values need the metrics agent,
# which `monitoring = true` on the droplet installs.
ALERTS: tuple[tuple[str, str, int, str], ...] = (
    ("cpu", "v1/insights/droplet/cpu", 85, "CPU above 85% for 10 minutes"),
    (
        "memory",
        "v1/insights/droplet/memory_utilization_percent",
        90,
        "memory above 90% for 10 minutes",
    ),
    (
        "disk",
        "v1/insights/droplet/disk_utilization_percent",
        85,
        "root disk above 85% for 10 minutes",
    ),
)


class EdgeAlerts(Construct):
    """CPU, memory and disk alerts by email."""

    def __init__(
        self, scope: Construct, id_: str, *, name: str, droplet: Droplet, email: str
    ) -> None:
        super().__init__(scope, id_)
        self.alerts: list[MonitorAlert] = []
        for logical_id, metric, threshold, description in ALERTS:
            alert = MonitorAlert(
                self,
                logical_id,
                type=metric,
                compare="GreaterThan",
                value=threshold,
                window="10m",
                entities=[droplet.id],
                description=f"{name}: {description}",
                alerts=MonitorAlertAlerts(email=[email]),
            )
            alert.override_logical_id(logical_id)
            self.alerts.append(alert)
