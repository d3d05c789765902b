"""Scenario 11: per-site policy, enforced by the edge's Caddy, through the real tailnet.

A lab of its own with the policy sites (support/lab/gates.py) next to the two
open ones: basic auth on family.lab.example, forward auth on sso.lab.example
against oauth2-proxy (a real auth server, built from the Go module proxy)
running on the homelab, AI crawlers blocked on nobots.lab.example, and
office.lab.example open to the visitor's address alone. The homelab's app
logs every request it receives, so each refusal is shown twice: the visitor's
answer, and nothing in the app's log.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import pytest
from support.lab.addresses import STRANGER, VISITOR
from support.lab.boxes import Box
from support.lab.gates import (
    AUTH_NAME,
    BASIC_PASSWORD,
    BASIC_USER,
    SSO_PASSWORD,
    SSO_USER,
)
from support.lab.lab import Lab
from support.lab.probes import curl

ZONE = "lab.example"
COOKIES = "/run/visitor-cookies"


@pytest.fixture(scope="module")
def policy_lab(lab_with: Callable[..., AbstractContextManager[Lab]]) -> Iterator[Lab]:
    with lab_with(policy=True) as lab:
        yield lab


@pytest.fixture(scope="module")
def stranger(policy_lab: Lab) -> Box:
    """A visitor from elsewhere on the internet (removed with the lab)."""
    return policy_lab.internet_box("stranger", STRANGER, {})


def _get(
    lab: Lab, site: str, *args: str, box: Box | None = None, path: str | None = None
) -> tuple[int, dict[str, str], str, str]:
    """GET https://<site>.lab.example<path> from the visitor (or `box`): status, headers,
    body, and the path asked for (unique unless given), to find in the app's log."""
    path = path or f"/whoami?probe={secrets.token_hex(4)}"
    done = curl(
        box or lab.visitor,
        f"https://{site}.{ZONE}{path}",
        "-D",
        "-",
        *args,
        roots=lab.roots,
    )
    assert done.returncode == 0, done.stderr
    head, _, body = done.stdout.partition("\n\n")  # run() reads text: CRLF is LF
    status_line, *lines = head.splitlines()
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, body, path


def _reached(lab: Lab, path: str) -> list[dict[str, Any]]:
    """The requests for `path` the homelab's app logged."""
    log = lab.home.box.log("app").splitlines()
    return [
        entry
        for line in log
        if line.startswith("{") and (entry := json.loads(line))["path"] == path
    ]


# ---------------------------------------------------------------------------
# Basic auth
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "credentials",
    [[], ["-u", f"{BASIC_USER}:wrong"], ["-u", f"mallory:{BASIC_PASSWORD}"]],
    ids=["none", "wrong password", "unknown user"],
)
def test_basic_auth_refuses_a_visitor_without_the_password(
    policy_lab: Lab, credentials: list[str]
) -> None:
    status, headers, _, path = _get(policy_lab, "family", *credentials)
    assert status == 401
    assert headers["www-authenticate"] == 'Basic realm="restricted"'
    assert _reached(policy_lab, path) == []


def test_basic_auth_lets_the_user_in_and_the_homelab_sees_who(policy_lab: Lab) -> None:
    status, _, body, path = _get(
        policy_lab, "family", "-u", f"{BASIC_USER}:{BASIC_PASSWORD}", "-H", "Remote-User: admin"
    )
    received = json.loads(body)["headers"]
    assert status == 200
    assert received["remote-user"] == BASIC_USER
    assert "authorization" not in received  # the password stops at the edge
    assert [entry["headers"]["remote-user"] for entry in _reached(policy_lab, path)] == [BASIC_USER]


# ---------------------------------------------------------------------------
# Forward auth against oauth2-proxy on the homelab
# ---------------------------------------------------------------------------


def _sign_in(lab: Lab, password: str) -> tuple[int, str]:
    """Post the auth server's login form, as a browser does; its status and Set-Cookie."""
    status, headers, _, _ = _get(
        lab,
        AUTH_NAME,
        "-c",
        COOKIES,
        "--data-urlencode",
        f"username={SSO_USER}",
        "--data-urlencode",
        f"password={password}",
        path="/oauth2/sign_in",
    )
    return status, headers.get("set-cookie", "")


def test_forward_auth_answers_an_unknown_visitor_as_the_auth_server_does(policy_lab: Lab) -> None:
    # oauth2-proxy's /oauth2/auth says 401 to a request without a session; Caddy
    # passes any answer but 2xx on as it came, and the app is never asked.
    spoofed = ["-H", f"X-Auth-Request-User: {SSO_USER}"]
    status, _, _, path = _get(policy_lab, "sso", *spoofed)
    assert status == 401
    assert _reached(policy_lab, path) == []
    assert "/oauth2/auth" in policy_lab.home.box.log("oauth2-proxy")


def test_a_wrong_password_gets_no_session(policy_lab: Lab) -> None:
    status, cookie = _sign_in(policy_lab, "wrong")
    assert (status, cookie) == (401, "")


def test_forward_auth_lets_a_signed_in_user_through_with_the_copied_headers(
    policy_lab: Lab,
) -> None:
    status, cookie = _sign_in(policy_lab, SSO_PASSWORD)
    assert status == 302
    assert f"Domain={ZONE}" in cookie  # the login site's cookie serves every site of the zone
    # The visitor also claims an email; oauth2-proxy gives none for this user, so the
    # edge drops the claim instead of passing it on.
    status, _, body, path = _get(
        policy_lab, "sso", "-b", COOKIES, "-H", "X-Auth-Request-Email: boss@lab.example"
    )
    assert status == 200
    received = json.loads(body)["headers"]
    assert received["x-auth-request-user"] == SSO_USER
    assert "x-auth-request-email" not in received
    assert len(_reached(policy_lab, path)) == 1


# ---------------------------------------------------------------------------
# AI crawlers
# ---------------------------------------------------------------------------

AI_CRAWLERS = [
    "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; "
    "+https://openai.com/gptbot)",
    "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; ClaudeBot/1.0; "
    "+claudebot@anthropic.com)",
    "CCBot/2.0 (https://commoncrawl.org/faq/)",
]


@pytest.mark.parametrize("agent", AI_CRAWLERS, ids=["GPTBot", "ClaudeBot", "CCBot"])
def test_an_ai_crawler_gets_403_and_the_homelab_never_sees_it(policy_lab: Lab, agent: str) -> None:
    status, _, _, path = _get(policy_lab, "nobots", "-A", agent)
    assert status == 403
    assert _reached(policy_lab, path) == []


def test_an_ai_crawler_reads_the_managed_robots_txt(policy_lab: Lab) -> None:
    status, headers, body, _ = _get(policy_lab, "nobots", "-A", AI_CRAWLERS[0], path="/robots.txt")
    assert status == 200
    assert headers["content-type"].startswith("text/plain")
    lines = body.splitlines()
    assert {"User-agent: GPTBot", "User-agent: ClaudeBot"} <= set(lines)
    assert lines[-1] == "Disallow: /"
    assert _reached(policy_lab, "/robots.txt") == []


def test_a_browser_still_reaches_a_block_ai_site_over_hsts(policy_lab: Lab) -> None:
    status, headers, body, _ = _get(
        policy_lab, "nobots", "-A", "Mozilla/5.0 (X11; Linux) Firefox/128.0"
    )
    assert status == 200
    assert json.loads(body)["app"] == "nobots"
    assert headers["strict-transport-security"] == "max-age=31536000"


# ---------------------------------------------------------------------------
# allow_cidrs
# ---------------------------------------------------------------------------


def test_a_source_inside_allow_cidrs_reaches_the_site(policy_lab: Lab) -> None:
    status, _, body, _ = _get(policy_lab, "office")
    assert (status, json.loads(body)["app"]) == (200, "office")


def test_a_source_outside_allow_cidrs_gets_403_and_nothing_reaches_the_homelab(
    policy_lab: Lab, stranger: Box
) -> None:
    # It claims the allowed address in every header it can; the edge judges the connection.
    claims = ["-H", f"X-Forwarded-For: {VISITOR.address}", "-H", f"X-Real-IP: {VISITOR.address}"]
    status, _, body, path = _get(policy_lab, "office", *claims, box=stranger)
    assert (status, body) == (403, "")
    assert _reached(policy_lab, path) == []


# ---------------------------------------------------------------------------
# The visitor's address
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["visitor", "stranger"])
def test_the_app_sees_the_visitors_real_address_and_never_a_claimed_one(
    policy_lab: Lab, stranger: Box, who: str
) -> None:
    box, address = (
        (policy_lab.visitor, VISITOR.address) if who == "visitor" else (stranger, STRANGER.address)
    )
    claims = ["X-Forwarded-For: 192.0.2.99", "X-Real-IP: 192.0.2.99", "Forwarded: for=192.0.2.99"]
    status, _, body, _ = _get(policy_lab, "blog", *(f"-H{claim}" for claim in claims), box=box)
    received = json.loads(body)
    assert status == 200
    assert received["peer"] == "100.64.0.1"  # the edge, over the tailnet
    assert received["headers"]["x-forwarded-for"] == address
    assert received["headers"]["x-real-ip"] == address
    assert "forwarded" not in received["headers"]
