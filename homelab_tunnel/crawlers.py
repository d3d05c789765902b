"""The AI crawlers `crawlers = "block-ai"` refuses, from the pinned crawler-user-agents package.

One list, maintained upstream (github.com/monperrus/crawler-user-agents, MIT)
and pinned exactly in pyproject.toml: bumping that pin is the one way to update
it. Its entries carry tags; those tagged `ai-crawler` are the ones refused.
render/ stays pure by taking the result as input; this is the one place that
reads the data, through importlib.resources, as payload.py does for the edge's
fixed files.
"""

from __future__ import annotations

import json
import re
from functools import cache
from importlib.metadata import version
from importlib.resources import files

from homelab_tunnel.render.crawlers import AiCrawlers

PACKAGE = "crawler-user-agents"
DATA = ("crawleruseragents", "crawler-user-agents.json")
AI_TAG = "ai-crawler"
# What a pattern may hold: it lands between backticks in the Caddyfile, so no
# backtick, brace (Caddy placeholders), quote or control character.
_SAFE_PATTERN = re.compile(r"[A-Za-z0-9 ._/\\\[\]*+?()|:;,=!-]{1,200}")


@cache
def ai_crawlers() -> AiCrawlers:
    """The `ai-crawler` entries of the installed, pinned list."""
    package, name = DATA
    entries = json.loads((files(package) / name).read_text(encoding="utf-8"))
    return crawlers_from(entries, f"{PACKAGE} {version(PACKAGE)}")


def crawlers_from(entries: list[dict[str, object]], source: str) -> AiCrawlers:
    """The AI crawlers among `entries` (the package's JSON); `ValueError` on a pattern
    that could not be written into a Caddyfile as it is."""
    patterns: list[str] = []
    for entry in entries:
        tags = entry.get("tags")
        pattern = entry.get("pattern")
        if not isinstance(tags, list) or AI_TAG not in tags:
            continue
        if not isinstance(pattern, str) or not _SAFE_PATTERN.fullmatch(pattern):
            raise ValueError(
                f"{source}: AI crawler pattern {pattern!r} holds characters the Caddyfile "
                "would read; refusing the whole list"
            )
        patterns.append(pattern)
    if not patterns:
        raise ValueError(f"{source}: no entry is tagged {AI_TAG!r}; the list changed shape")
    return AiCrawlers(source=source, patterns=tuple(patterns))
