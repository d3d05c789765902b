"""The monthly cost `check` prints: list prices, one Spaces subscription however many buckets."""

from __future__ import annotations

from support.config import config_with

from homelab_tunnel.cost import SPACES_SUBSCRIPTION, items, monthly_line

SPACES_STATE = {
    "type": "spaces",
    "bucket": "homelab-state",
    "key": "edge/t.tfstate",
    "region": "fra1",
}


def _spaces_items(**changes: object) -> list[str]:
    return [item.what for item in items(config_with(**changes)) if item.what.startswith("Spaces")]


def test_the_example_costs_the_droplet_volume_spaces_and_snapshots() -> None:
    assert monthly_line(config_with()) == (
        "about $12.40/month: droplet s-1vcpu-1gb $6.00, volume 5 GiB $0.50, "
        "Spaces for backups (one subscription per account, shared) $5.00, "
        "volume snapshots, at most 3 x 5 GiB $0.90"
    )


def test_without_backups_or_remote_state_there_is_no_spaces_subscription() -> None:
    assert _spaces_items(backup={"enabled": False}) == []
    assert monthly_line(config_with(backup={"enabled": False})).startswith("about $6.50/month")


def test_backups_and_remote_state_share_one_subscription() -> None:
    (spaces,) = [i for i in items(config_with(backend=SPACES_STATE)) if i.what.startswith("Spaces")]
    assert (
        spaces.what
        == "Spaces for backups and Terraform state (one subscription per account, shared)"
    )
    assert spaces.monthly == SPACES_SUBSCRIPTION


def test_an_unknown_size_makes_the_total_a_lower_bound() -> None:
    line = monthly_line(config_with(size="c-2", backup={"enabled": False}))
    assert line == "at least $0.50/month: droplet c-2 price unknown, volume 5 GiB $0.50"
