"""The Caddyfile snippet that keeps AI crawlers out of the sites that ask for it.

Written once, imported by each `crawlers = "block-ai"` site: the managed
robots.txt first (a polite crawler reads it and stops), then 403 for every
request whose User-Agent matches the list. The list is an input (crawlers.py
reads the pinned package), so rendering stays pure.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

SNIPPET = "ai_crawlers"
_EITHER_CASE = re.compile(r"\[([A-Za-z])([A-Za-z])\]")
_REGEXP_SYNTAX = set("\\.^$*+?()[]{}|")


@dataclass(frozen=True)
class AiCrawlers:
    """Where the list came from, and its User-Agent patterns (regexps, matched with case)."""

    source: str
    patterns: tuple[str, ...]


def robots_txt(crawlers: AiCrawlers) -> str:
    """One group naming every AI crawler: nothing is theirs. Other agents are not named,
    so robots.txt leaves them everything."""
    agents = dict.fromkeys(agent for agent in map(robots_agent, crawlers.patterns) if agent)
    lines = [f"# AI crawlers ({crawlers.source}): nothing here is for them."]
    lines += [f"User-agent: {agent}" for agent in agents]
    lines.append("Disallow: /")
    return "\n".join(lines)


def crawler_snippet(crawlers: AiCrawlers) -> str:
    """The `(ai_crawlers)` snippet; a site imports it inside its `route`.

    Patterns that are plain text (most of them) become substring matches of
    Caddy's `header` matcher; only the rest go to `header_regexp`. One regexp
    of every pattern cost Go's engine about 0.1 ms a request on this list.
    """
    literals, regexps = split_patterns(crawlers.patterns)
    robots = "\n".join(f"\t{line}" for line in robots_txt(crawlers).splitlines())
    lines = [
        f"respond /robots.txt <<ROBOTS\n{robots}\n\tROBOTS 200",
        # Repeated header lines on one field are OR'ed (caddyhttp/matchers.go).
        "@ai_crawler {\n"
        + _indent("\n".join(f"header User-Agent {_token(f'*{text}*')}" for text in literals))
        + "\n}",
        "respond @ai_crawler 403",
    ]
    if regexps:
        lines += [
            f"@ai_crawler_pattern header_regexp User-Agent `{'|'.join(regexps)}`",
            "respond @ai_crawler_pattern 403",
        ]
    return (
        f"# AI crawlers, from {crawlers.source} (its entries tagged ai-crawler).\n"
        '# Sites with crawlers = "block-ai" import this: /robots.txt disallows them all,\n'
        "# and any request whose User-Agent matches gets 403 before reaching the homelab.\n"
        f"({SNIPPET}) {{\n" + _indent("\n".join(lines)) + "\n}\n"
    )


def split_patterns(patterns: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """The patterns as plain strings to look for (`[cC]` spelled out both ways, `\\/`
    as `/`), and the ones that need a regexp engine after all."""
    literals: list[str] = []
    regexps: list[str] = []
    for pattern in patterns:
        spelled = _spellings(pattern)
        if spelled is None:
            regexps.append(pattern)
        else:
            literals += [text for text in spelled if text not in literals]
    return literals, regexps


def _spellings(pattern: str) -> list[str] | None:
    """Every string `pattern` matches as a substring, or None if it is not that simple."""
    choices, whole = _literal_start(pattern)
    return ["".join(spelling) for spelling in itertools.product(*choices)] if whole else None


def robots_agent(pattern: str) -> str:
    """The name robots.txt addresses a pattern's crawler by: its literal start.

    `GPTBot` stays, `PerplexityBot\\/` is `PerplexityBot`, `[cC]laude[bB]ot` is
    `ClaudeBot` (robots.txt compares names without case), `Spider[\\s\\S]*...` is
    `Spider`.
    """
    choices, _ = _literal_start(pattern)
    return "".join(min(choice) for choice in choices).strip(" /")  # min: "C" before "c"


def _literal_start(pattern: str) -> tuple[list[tuple[str, ...]], bool]:
    """The characters `pattern` starts with, each with its spellings (`[cC]`: both), up to
    the first regexp syntax; and whether that is the whole pattern."""
    choices: list[tuple[str, ...]] = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        either = _EITHER_CASE.match(pattern, index)
        if char == "\\" and index + 1 < len(pattern) and not pattern[index + 1].isalnum():
            choices.append((pattern[index + 1],))
            index += 2
        elif either and either[1] == either[2].swapcase():
            choices.append((either[1], either[2]))
            index += len(either[0])
        elif char in _REGEXP_SYNTAX:
            return choices, False
        else:
            choices.append((char,))
            index += 1
    return choices, True


def _token(text: str) -> str:
    return f'"{text}"' if " " in text else text


def _indent(text: str) -> str:
    return "\n".join(f"\t{line}" if line else line for line in text.splitlines())
