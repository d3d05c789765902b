"""What the edge a config describes costs each month, roughly, before anyone applies it.

DigitalOcean's list prices in USD as of 2026-11 (docs.digitalocean.com
pricing pages). Reserved IPs, the cloud firewall, DNS, monitoring alerts and
projects cost nothing while the reserved IP is assigned to the droplet.
"""

from __future__ import annotations

from dataclasses import dataclass

from homelab_tunnel.config import TunnelConfig

# Basic (regular) droplets, per month.
DROPLET_PRICES = {
    "s-1vcpu-512mb-10gb": 4.0,
    "s-1vcpu-1gb": 6.0,
    "s-1vcpu-2gb": 12.0,
    "s-2vcpu-2gb": 18.0,
    "s-2vcpu-4gb": 24.0,
    "s-4vcpu-8gb": 48.0,
    "s-8vcpu-16gb": 96.0,
}
VOLUME_PER_GIB = 0.10
SNAPSHOT_PER_GIB = 0.06
# One subscription for every bucket of the account (250 GiB and 1 TiB of transfer included).
SPACES_SUBSCRIPTION = 5.0


@dataclass(frozen=True)
class Item:
    what: str
    monthly: float | None  # None: the price of this part is not known here

    def __str__(self) -> str:
        price = f"${self.monthly:.2f}" if self.monthly is not None else "price unknown"
        return f"{self.what} {price}"


def items(config: TunnelConfig) -> list[Item]:
    found = [
        Item(f"droplet {config.size}", DROPLET_PRICES.get(config.size)),
        Item(f"volume {config.volume.size_gb} GiB", config.volume.size_gb * VOLUME_PER_GIB),
    ]
    # The config bucket is always there (sites and policy reach the edge in place
    # through it), so every edge needs the subscription; nothing more for more buckets.
    buckets = [
        purpose
        for purpose, used in (
            ("the config", True),
            ("backups", config.backup.enabled),
            ("Terraform state", config.backend.type == "spaces"),
        )
        if used
    ]
    found.append(
        Item(
            f"Spaces for {', '.join(buckets)} (one subscription per account, shared; "
            "nothing more if the account has it already)",
            SPACES_SUBSCRIPTION,
        )
    )
    if config.backup.enabled:
        keep = config.backup.snapshots_keep
        found.append(
            Item(
                f"volume snapshots, at most {keep} x {config.volume.size_gb} GiB",
                keep * config.volume.size_gb * SNAPSHOT_PER_GIB,
            )
        )
    return found


def monthly_line(config: TunnelConfig) -> str:
    """`about $11.50/month: droplet ... $6.00, ...`, or a lower bound when a price is unknown."""
    listed = items(config)
    total = sum(item.monthly or 0.0 for item in listed)
    known = all(item.monthly is not None for item in listed)
    lead = f"about ${total:.2f}/month" if known else f"at least ${total:.2f}/month"
    return f"{lead}: " + ", ".join(str(item) for item in listed)
