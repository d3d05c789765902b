"""The config object's updates: their own class, "in place (no downtime)", naming the sites."""

from __future__ import annotations

import json
from typing import Any

from support.config import config_with
from support.plans import DROPLET, change, plan, summary_of
from typer.testing import CliRunner

from homelab_tunnel.cli import app
from homelab_tunnel.payload import edge_config_object
from homelab_tunnel.plan.model import Action, Danger
from homelab_tunnel.plan.report import render

CONFIG = "digitalocean_spaces_bucket_object.config"
runner = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1"})


def _object(**changes: Any) -> dict[str, Any]:
    """The config object as plans show it, for the example config with `changes`."""
    body = edge_config_object(config_with(**changes)).body
    return {"key": "homelab-edge/edge-config.json", "content": body, "metadata": {"mac": "x"}}


def _sites(*extra: dict[str, Any]) -> list[dict[str, Any]]:
    base = [
        {"domain": "blog.example.com", "upstream": "homelab", "port": 8080},
        {"domain": "photos.example.com", "upstream": "homelab", "port": 2342},
    ]
    return base + list(extra)


WIKI = {"domain": "wiki.example.com", "upstream": "homelab", "port": 3000}


def _update(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    return change(CONFIG, ["update"], before=before, after=after)


def test_a_site_added_is_in_place_and_named() -> None:
    summary = summary_of(plan(_update(_object(), _object(sites=_sites(WIKI)))))
    (config,) = summary.changes
    assert (config.action, config.danger) == (Action.UPDATE, Danger.IN_PLACE)
    assert summary.verdict is Danger.IN_PLACE
    assert "added wiki.example.com (-> http://homelab.tail.example.net:3000)" in (
        config.consequence
    )
    assert "applied by the running edge with no downtime" in config.consequence


def test_a_site_removed_and_one_changed_are_named() -> None:
    sites = [{"domain": "blog.example.com", "upstream": "nas", "port": 8081}]
    (config,) = summary_of(plan(_update(_object(), _object(sites=sites)))).changes
    assert "removed photos.example.com" in config.consequence
    assert (
        "blog.example.com: port 8080 -> 8081 and upstream 'homelab.tail.example.net' -> "
        "'nas.tail.example.net'"
    ) in config.consequence
    assert "Headscale users for the upstream machines" in config.consequence


def test_a_webhook_change_alone_is_in_place_too() -> None:
    before, after = _object(), _object()
    after["metadata"] = {"mac": "y"}
    (config,) = summary_of(plan(_update(before, after))).changes
    assert config.danger is Danger.IN_PLACE
    assert "its webhook or MAC changed" in config.consequence


def test_a_config_only_plan_is_never_called_downtime() -> None:
    summary = summary_of(plan(_update(_object(), _object(sites=_sites(WIKI)))))
    text = render(summary, "text")
    assert "in place (no downtime): the running edge applies the new config" in text
    assert "downtime:" not in text.replace("no downtime", "")
    assert not summary.reaches(Danger.DOWNTIME)


def test_the_text_table_keeps_its_columns_with_an_in_place_change() -> None:
    records = [
        change("digitalocean_record.a_wiki", ["create"], after={"name": "wiki", "type": "A"}),
    ]
    text = render(
        summary_of(plan(_update(_object(), _object(sites=_sites(WIKI))), *records)), "text"
    )
    rows = [line for line in text.splitlines() if line.startswith("  ")]
    assert [row.index("digitalocean_") for row in rows] == [34, 34]
    assert rows[1].startswith("  safe                   create   ")


def test_a_user_data_change_is_still_downtime() -> None:
    """The negative twin: the same plan with the droplet replaced reads as downtime."""
    droplet = change(
        "digitalocean_droplet.edge",
        ["delete", "create"],
        before=DROPLET,
        after={**DROPLET, "user_data": "def"},
        replace_paths=[["user_data"]],
    )
    summary = summary_of(plan(_update(_object(), _object(sites=_sites(WIKI))), droplet))
    assert summary.verdict is Danger.DOWNTIME


def test_the_first_config_object_is_safe_and_the_move_is_explained() -> None:
    droplet = change(
        "digitalocean_droplet.edge",
        ["delete", "create"],
        before=DROPLET,
        after={**DROPLET, "user_data": "def"},
        replace_paths=[["user_data"]],
    )
    summary = summary_of(plan(change(CONFIG, ["create"], after=_object()), droplet))
    config = next(c for c in summary.changes if c.address == CONFIG)
    assert config.danger is Danger.SAFE
    assert any("moves the edge to the in-place config channel" in note for note in summary.notes)


def test_plan_summary_shows_an_in_place_plan_as_a_note_not_a_warning(tmp_path: Any) -> None:
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan(_update(_object(), _object(sites=_sites(WIKI))))))
    result = runner.invoke(app, ["plan-summary", str(path), "--fail-on", "downtime"])
    assert result.exit_code == 0, result.output
    assert "verdict: in place (no downtime)" in result.stdout
    markdown = runner.invoke(app, ["plan-summary", str(path), "--format", "markdown"])
    assert "🔄" in markdown.stdout
    assert "wiki.example.com" in markdown.stdout


GATED = {"auth": {"basic": [{"user": "ann", "password_hash": "$2a$14$" + "a" * 53}]}}


def test_a_gate_removed_through_the_config_object_is_exposure() -> None:
    """Policy travels in the config object: the PR must still say the site is now public."""
    gated = _sites()
    gated[0] = {**gated[0], **GATED}
    (config,) = summary_of(plan(_update(_object(sites=gated), _object()))).changes
    assert config.danger is Danger.EXPOSURE
    assert "blog.example.com" in config.consequence
    assert "now public" in config.consequence


def test_a_gate_added_is_in_place_not_exposure() -> None:
    """The twin: the same change the other way closes the site; nothing opens."""
    gated = _sites()
    gated[0] = {**gated[0], **GATED}
    (config,) = summary_of(plan(_update(_object(), _object(sites=gated)))).changes
    assert config.danger is Danger.IN_PLACE


# ---------------------------------------------------------------------------
# Metrics scrapers: a machine that may newly read the edge's metrics is exposure
# ---------------------------------------------------------------------------


def test_a_new_scraper_is_exposure_and_named() -> None:
    after = _object(metrics={"scrapers": ["homelab", "monitor"]})
    summary = summary_of(plan(_update(_object(metrics={"scrapers": ["homelab"]}), after)))
    (config,) = summary.changes
    assert (config.action, config.danger) == (Action.UPDATE, Danger.EXPOSURE)
    assert config.consequence.startswith(
        "monitor may now scrape the edge's metrics on its tailnet address"
    )
    assert "metrics endpoint: scrapers homelab, monitor, port 9180" in config.consequence
    document = json.dumps(plan(_update(_object(), after)))
    result = runner.invoke(app, ["plan-summary", "-", "--fail-on", "exposure"], input=document)
    assert result.exit_code == 1, result.output


def test_negative_twin_a_scraper_removed_or_a_port_moved_is_in_place() -> None:
    before = _object(metrics={"scrapers": ["homelab", "monitor"]})
    fewer = _object(metrics={"scrapers": ["homelab"], "port": 9300})
    (config,) = summary_of(plan(_update(before, fewer))).changes
    assert config.danger is Danger.IN_PLACE
    assert "metrics endpoint: scrapers homelab, port 9300" in config.consequence
