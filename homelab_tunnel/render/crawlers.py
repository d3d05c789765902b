"""The Caddyfile snippet that keeps AI crawlers out of the sites that ask for it.

Written once, imported by each `crawlers = "block-ai"` site: the managed
robots.txt first (a polite crawler reads it and stops), then 403 for every
request whose User-Agent matches the list. The list is an input (crawlers.py
reads the pinned package), so rendering stays pure.
"""

from __future__ import annotations

from dataclasses import dataclass

SNIPPET = "ai_crawlers"


@dataclass(frozen=True)
class AiCrawlers:
    """Where the list came from, its User-Agent patterns (RE2 syntax, matched with
    case), and the names robots.txt addresses them by."""

    source: str
    patterns: tuple[str, ...]
    agents: tuple[str, ...]


def robots_txt(crawlers: AiCrawlers) -> str:
    """One group naming every AI crawler: nothing is theirs. Other agents are not named,
    so robots.txt leaves them everything."""
    lines = [f"# AI crawlers ({crawlers.source}): nothing here is for them."]
    lines += [f"User-agent: {agent}" for agent in crawlers.agents]
    lines.append("Disallow: /")
    return "\n".join(lines)


def crawler_snippet(crawlers: AiCrawlers) -> str:
    """The `(ai_crawlers)` snippet; a site imports it inside its `route`."""
    robots = "\n".join(f"\t{line}" for line in robots_txt(crawlers).splitlines())
    body = (
        f"@ai_crawler header_regexp User-Agent `{'|'.join(crawlers.patterns)}`\n"
        f"respond /robots.txt <<ROBOTS\n{robots}\n\tROBOTS 200\n"
        "respond @ai_crawler 403"
    )
    return (
        f"# AI crawlers, from {crawlers.source} (its entries tagged ai-crawler).\n"
        '# Sites with crawlers = "block-ai" import this: /robots.txt disallows them all,\n'
        "# and any request whose User-Agent matches gets 403 before reaching the homelab.\n"
        f"({SNIPPET}) {{\n" + _indent(body) + "\n}\n"
    )


def _indent(text: str) -> str:
    return "\n".join(f"\t{line}" if line else line for line in text.splitlines())
