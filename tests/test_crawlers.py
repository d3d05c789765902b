"""The AI crawler list: read from the pinned package, whole, and safe to write into a Caddyfile."""

from __future__ import annotations

import json
import re
import tomllib
from importlib.metadata import version

import pytest
from support.config import ROOT

from homelab_tunnel.crawlers import DATA, PACKAGE, ai_crawlers, crawlers_from
from homelab_tunnel.render.crawlers import robots_agent, robots_txt, split_patterns


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
    agents = {line.removeprefix("User-agent: ") for line in robots_txt(crawlers).splitlines()}
    assert {"GPTBot", "ClaudeBot", "CCBot", "Google-Extended"} <= agents


def _package_entries() -> list[dict[str, object]]:
    from importlib.resources import files

    package, name = DATA
    return list(json.loads((files(package) / name).read_text(encoding="utf-8")))


def test_plain_strings_and_leftover_regexps_match_exactly_what_the_patterns_do() -> None:
    """The Caddyfile looks for most patterns as plain substrings (fast); on every sample
    User-Agent the package ships, crawler or not, that decides as the regexps do."""
    patterns = ai_crawlers().patterns
    literals, regexps = split_patterns(patterns)
    assert len(regexps) < len(patterns) / 10  # nearly all became plain substrings
    samples = [str(agent) for entry in _package_entries() for agent in entry["instances"]]
    assert len(samples) > 1000
    for agent in samples:
        by_regexp = any(re.search(pattern, agent) for pattern in patterns)
        by_split = any(text in agent for text in literals) or any(
            re.search(pattern, agent) for pattern in regexps
        )
        assert by_split == by_regexp, agent


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
