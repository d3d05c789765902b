"""plan-summary's judgement of a policy change: which sites a change makes more public."""

from __future__ import annotations

from typing import Any

import pytest
from support.config import config_with

from homelab_tunnel.plan.policy import policy_exposures
from homelab_tunnel.render.sites import describe_policy, site_document, site_documents

HASH = "$2a$14$ajq8Q7fbtFRQvXpdCq7Jcuy.Rx1h/L4J60Otx.gyNLbAYctGMJ9tK"
BASIC = {
    "basic": [{"user": "alice", "password_hash": HASH}, {"user": "bob", "password_hash": HASH}]
}
FORWARD = {"forward": {"upstream": "auth", "port": 9091, "path": "/api/authz/forward-auth"}}


def _documents(**policy: Any) -> list[dict[str, Any]]:
    """The site list of a config whose blog site has `policy` (photos stays open)."""
    config = config_with(
        sites=[
            {"domain": "blog.example.com", "upstream": "homelab", "port": 8080, **policy},
            {"domain": "photos.example.com", "upstream": "homelab", "port": 2342},
        ]
    )
    return site_documents(config)


# (before, after, the line plan-summary prints, or None when nothing opens up)
CHANGES: list[tuple[dict[str, Any], dict[str, Any], str | None]] = [
    ({"auth": BASIC}, {}, "blog.example.com is now public: its basic-auth gate is removed"),
    ({"auth": FORWARD}, {}, "blog.example.com is now public: its forward-auth gate is removed"),
    (
        {"auth": BASIC, "allow_cidrs": ["198.51.100.0/24"]},
        {"allow_cidrs": ["198.51.100.0/24"]},
        "blog.example.com is more exposed: its basic-auth gate is removed",
    ),
    (
        {"allow_cidrs": ["198.51.100.0/24"]},
        {},
        "blog.example.com is now public: allow_cidrs is removed (it was 198.51.100.0/24): "
        "every address may connect",
    ),
    (
        {"allow_cidrs": ["198.51.100.0/25"]},
        {"allow_cidrs": ["198.51.100.0/24", "2001:db8::/32"]},
        "blog.example.com is more exposed: allow_cidrs lets in more: 198.51.100.0/24, "
        "2001:db8::/32",
    ),
    (
        {"allow_cidrs": ["198.51.100.0/24"], "auth": BASIC},
        {"allow_cidrs": ["0.0.0.0/0"], "auth": BASIC},
        "blog.example.com is more exposed: allow_cidrs lets in more: 0.0.0.0/0",
    ),
    (
        {"crawlers": "block-ai"},
        {"crawlers": "allow"},
        "blog.example.com is now public: AI crawlers are no longer blocked",
    ),
    (
        {"crawlers": "block-ai", "auth": FORWARD, "allow_cidrs": ["198.51.100.0/24"]},
        {},
        "blog.example.com is now public: its forward-auth gate is removed; allow_cidrs is "
        "removed (it was 198.51.100.0/24): every address may connect; AI crawlers are no "
        "longer blocked",
    ),
    # The twins: changes that open nothing up.
    ({}, {"auth": BASIC}, None),
    ({"auth": BASIC}, {"auth": FORWARD}, None),  # another gate still stands
    ({}, {"allow_cidrs": ["198.51.100.0/24"]}, None),
    ({"allow_cidrs": ["198.51.100.0/24"]}, {"allow_cidrs": ["198.51.100.0/25"]}, None),
    (
        {"allow_cidrs": ["198.51.100.0/25", "198.51.100.128/25"]},
        {"allow_cidrs": ["198.51.100.0/24"]},
        None,
    ),
    ({"allow_cidrs": ["2001:db8::/32"]}, {"allow_cidrs": ["2001:db8:1::/48"]}, None),
    ({"crawlers": "allow"}, {"crawlers": "block-ai"}, None),
    ({"hsts": True}, {"hsts": False}, None),
    ({}, {}, None),
]


@pytest.mark.parametrize(("before", "after", "line"), CHANGES)
def test_a_policy_change_that_opens_a_site_is_one_line(
    before: dict[str, Any], after: dict[str, Any], line: str | None
) -> None:
    assert policy_exposures(_documents(**before), _documents(**after)) == ([line] if line else [])


def test_a_new_site_is_not_the_exposure_of_an_existing_one() -> None:
    before = _documents()[:1]
    assert policy_exposures(before, _documents()) == []


def test_a_removed_or_renamed_site_exposes_nothing() -> None:
    before = _documents(auth=BASIC)
    after = [{**document, "domain": "new.example.com"} for document in _documents()]
    assert policy_exposures(before, after[:1]) == []


def test_documents_of_an_older_release_read_their_missing_keys_as_defaults() -> None:
    old = [{"domain": "blog.example.com", "upstream": "homelab.tail.example.net", "port": 8080}]
    assert policy_exposures(old, _documents()) == []
    assert policy_exposures(_documents(crawlers="block-ai"), old) == [
        "blog.example.com is now public: AI crawlers are no longer blocked"
    ]


# ---------------------------------------------------------------------------
# The site documents themselves
# ---------------------------------------------------------------------------


def test_a_site_document_never_carries_a_password_hash() -> None:
    (blog, _) = _documents(auth=BASIC)
    assert blog["auth"] == {"kind": "basic", "users": ["alice", "bob"]}
    assert HASH not in repr(blog)
    assert "$2a$" not in repr(blog)


def test_a_site_document_names_everything_its_policy_holds() -> None:
    config = config_with(
        sites=[
            {
                "domain": "wiki.example.com",
                "upstream": "100.64.0.7",
                "port": 3000,
                "scheme": "https",
                "allow_cidrs": ["198.51.100.0/24"],
                "crawlers": "block-ai",
                "hsts": True,
                "auth": {"forward": {**FORWARD["forward"], "copy_headers": ["Remote-User"]}},
            }
        ]
    )
    assert site_document(config, config.sites[0]) == {
        "domain": "wiki.example.com",
        "upstream": "100.64.0.7",
        "port": 3000,
        "scheme": "https",
        "allow_cidrs": ["198.51.100.0/24"],
        "crawlers": "block-ai",
        "auth": {
            "kind": "forward",
            "upstream": "auth.tail.example.net",
            "port": 9091,
            "path": "/api/authz/forward-auth",
            "copy_headers": ["Remote-User"],
        },
        "hsts": True,
    }
    assert describe_policy(site_document(config, config.sites[0])) == (
        "only 198.51.100.0/24; AI crawlers blocked; forward auth "
        "(auth.tail.example.net:9091/api/authz/forward-auth); HSTS"
    )


def test_an_open_site_is_described_as_open() -> None:
    assert describe_policy(_documents()[1]) == "open to everyone"
