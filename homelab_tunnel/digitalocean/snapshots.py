"""A snapshot of the state volume before a risky apply, keeping the newest few.

Replacing the droplet or moving Headscale to another release is safe by
design (state on the volume, backups off the box), but a snapshot taken a
minute before is the cheapest way back if it is not. Only snapshots this tool
made (its tag and name prefix) are ever deleted.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from homelab_tunnel.config import TunnelConfig
from homelab_tunnel.findings import Finding, note, ok, problem

TAG = "homelab-tunnel-snapshot"


class SnapshotApi(Protocol):
    def volumes(self, name: str, region: str) -> list[dict[str, Any]]: ...
    def volume_snapshots(self, volume_id: str) -> list[dict[str, Any]]: ...
    def create_volume_snapshot(
        self, volume_id: str, name: str, tags: list[str]
    ) -> dict[str, Any]: ...
    def delete_snapshot(self, snapshot_id: str) -> None: ...


def snapshot_name(config: TunnelConfig, now: datetime, reason: str) -> str:
    """`<volume>-20261129-221500-<reason>`: sortable, and says why it was taken."""
    return f"{config.volume_name}-{now:%Y%m%d-%H%M%S}-{reason}"


def take_snapshot(
    config: TunnelConfig, api: SnapshotApi, *, now: datetime, reason: str
) -> list[Finding]:
    """Snapshot the state volume, then delete this tool's oldest beyond backup.snapshots_keep."""
    found = api.volumes(config.volume_name, config.region)
    if len(found) != 1:
        return [
            problem(
                "snapshot",
                f"expected one volume named {config.volume_name} in {config.region}, found "
                f"{len(found)}; nothing to snapshot before the first apply",
            )
        ]
    volume_id = str(found[0]["id"])
    name = snapshot_name(config, now, reason)
    api.create_volume_snapshot(volume_id, name, ["homelab-tunnel", TAG])
    findings = [ok("snapshot", f"{name} of volume {config.volume_name} taken")]
    ours = sorted(
        (
            s
            for s in api.volume_snapshots(volume_id)
            if TAG in (s.get("tags") or [])
            and str(s.get("name", "")).startswith(config.volume_name)
        ),
        key=lambda s: (str(s.get("created_at", "")), str(s.get("name", ""))),
    )
    keep = config.backup.snapshots_keep
    for old in ours[: max(len(ours) - keep, 0)]:
        api.delete_snapshot(str(old["id"]))
        findings.append(note("snapshot", f"{old['name']} deleted (keeping the newest {keep})"))
    return findings
