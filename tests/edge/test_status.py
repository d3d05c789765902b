"""Reading `tailscale status --json` and whois: malformed input is named, never judged."""

from __future__ import annotations

import pytest
from support.tailnet import (
    diagnose_fixture,
    status_fixture,
)

from homelab_tunnel.edge.status import SourceError, parse_status


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not JSON"),
        ("[]", "no BackendState"),
        ('{"Version": "1.90.2"}', "no BackendState"),
        ('{"BackendState": "Running", "Peer": []}', "Peer: expected an object"),
        ('{"BackendState": "Running", "Peer": {"k": 3}}', "Peer: expected an object"),
        ('{"BackendState": "Running", "Health": "bad"}', "Health: expected a list"),
        ('{"BackendState": "Running", "Version": 1.9}', "Version: expected a string"),
    ],
)
def test_malformed_status_is_refused(text: str, message: str) -> None:
    with pytest.raises(SourceError, match=message):
        parse_status(text)


def test_wrongly_typed_peer_field_names_the_peer_and_field() -> None:
    status = status_fixture("direct")
    key, peer = next(iter(status["Peer"].items()))
    peer["Online"] = "yes"
    with pytest.raises(SourceError, match=rf"Peer\[{key}\]\.Online: expected true or false"):
        diagnose_fixture(status)


def test_status_without_peers_is_valid() -> None:
    status = status_fixture("direct")
    status["Peer"] = None
    report = diagnose_fixture(status, upstreams=())
    assert [node.path for node in report.nodes] == [None]
