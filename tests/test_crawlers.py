"""The AI crawler list: read from the pinned package, whole, and safe to write into a Caddyfile."""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import version

import pytest
from support.config import ROOT

from homelab_tunnel.crawlers import PACKAGE, ai_crawlers, crawlers_from, robots_agent


def test_the_list_comes_from_the_version_pyproject_pins() -> None:
    """One place to update it: the exact pin, which uv.lock and the installed package follow."""
    pins = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    (pin,) = [spec for spec in pins if spec.startswith(f"{PACKAGE}==")]
    assert ai_crawlers().source == f"{PACKAGE} {pin.split('==')[1]}"
    assert version(PACKAGE) == pin.split("==")[1]


def test_the_list_holds_the_well_known_ai_crawlers_and_no_search_engine() -> None:
    crawlers = ai_crawlers()
    joined = "|".join(crawlers.patterns)
    for agent in ("GPTBot/1.0", "ClaudeBot/1.0", "CCBot/2.0", "Bytespider", "PerplexityBot/1.0"):
        assert re.search(joined, agent), agent
    assert not re.search(joined, "Mozilla/5.0 (compatible; Googlebot/2.1)")
    assert {"GPTBot", "ClaudeBot", "CCBot", "Google-Extended"} <= set(crawlers.agents)


@pytest.mark.parametrize(
    ("pattern", "agent"),
    [
        ("GPTBot", "GPTBot"),
        ("PerplexityBot\\/", "PerplexityBot"),
        ("[cC]laude[bB]ot", "ClaudeBot"),
        ("bigsur\\.ai", "bigsur.ai"),
        ("Spider[\\s\\S]*spider\\.com", "Spider"),
        ("Kangaroo Bot", "Kangaroo Bot"),
        ("[ab]bot", ""),  # not one letter in either case: no literal start
        ("(?i)gptbot", ""),
    ],
)
def test_robots_txt_names_each_crawler_by_its_literal_start(pattern: str, agent: str) -> None:
    assert robots_agent(pattern) == agent


def _entry(pattern: str, tags: list[str] | None = None) -> dict[str, object]:
    return {"pattern": pattern, "tags": tags or ["ai-crawler"], "instances": []}


@pytest.mark.parametrize(
    "pattern", ["GPT`Bot", "GPT{$HOME}Bot", "GPTBot\nrespond 200", 'GPT"Bot', "GPT#Bot", ""]
)
def test_a_pattern_the_caddyfile_would_read_refuses_the_whole_list(pattern: str) -> None:
    with pytest.raises(ValueError, match="refusing the whole list"):
        crawlers_from([_entry("GPTBot"), _entry(pattern)], "test list")


def test_entries_without_the_ai_tag_are_left_out() -> None:
    crawlers = crawlers_from(
        [_entry("GPTBot"), _entry("Googlebot\\/", ["search-engine"])], "test list"
    )
    assert crawlers.patterns == ("GPTBot",)


def test_a_list_with_no_ai_crawler_is_refused() -> None:
    """A renamed tag upstream must not silently block nothing."""
    with pytest.raises(ValueError, match="no entry is tagged"):
        crawlers_from([_entry("Googlebot", ["search-engine"])], "test list")
