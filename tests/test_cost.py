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
        "Spaces for the config, backups (one subscription per account, shared; nothing "
        "more if the account has it already) $5.00, volume snapshots, at most 3 x 5 GiB $0.90"
    )


def test_the_config_bucket_alone_needs_the_spaces_subscription() -> None:
    """The in-place channel is always there: every edge pays for Spaces once."""
    assert _spaces_items(backup={"enabled": False}) == [
        "Spaces for the config (one subscription per account, shared; nothing more if the "
        "account has it already)"
    ]
    assert monthly_line(config_with(backup={"enabled": False})).startswith("about $11.50/month")


def test_backups_and_remote_state_share_one_subscription() -> None:
    (spaces,) = [i for i in items(config_with(backend=SPACES_STATE)) if i.what.startswith("Spaces")]
    assert spaces.what == (
        "Spaces for the config, backups, Terraform state (one subscription per account, "
        "shared; nothing more if the account has it already)"
    )
    assert spaces.monthly == SPACES_SUBSCRIPTION


def test_an_unknown_size_makes_the_total_a_lower_bound() -> None:
    line = monthly_line(config_with(size="c-2", backup={"enabled": False}))
    assert line.startswith(
        "at least $5.50/month: droplet c-2 price unknown, volume 5 GiB $0.50, Spaces for"
    )
