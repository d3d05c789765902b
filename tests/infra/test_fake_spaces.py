"""The fake DigitalOcean's Spaces: its keys API through pydo, its S3 side the way the provider asks.

The provider cannot be built here (test_terraform_changes.py skips without
it), so what it would do is proven piece by piece with the clients that can
run: pydo, DigitalOcean's own Python client, for /v2/spaces/keys (the
calls godo makes: POST, GET, PUT, DELETE), and boto3 addressing buckets by
their own host through the proxy, as aws-sdk-go does, with the keys the
API made.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest
from azure.core.exceptions import HttpResponseError
from pydo import Client
from support.fake_digitalocean import TOKEN, FakeDigitalOcean
from support.fake_digitalocean.spaces_s3 import FakeSpaces


@pytest.fixture
def api(
    certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> Iterator[FakeDigitalOcean]:
    cert, key = certificate
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    with FakeDigitalOcean(cert, key) as server:
        yield server


@pytest.fixture(scope="module")
def spaces(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeSpaces]:
    with FakeSpaces(tmp_path_factory.mktemp("spaces")) as fake:
        yield fake


def _pydo(api: FakeDigitalOcean) -> Client:
    return Client(token=TOKEN, endpoint=api.url, retry_total=0)


def _grant(bucket: str, permission: str) -> dict[str, str]:
    return {"bucket": bucket, "permission": permission}


# ---------------------------------------------------------------------------
# /v2/spaces/keys
# ---------------------------------------------------------------------------


def test_a_key_is_made_read_changed_and_deleted_through_pydo(api: FakeDigitalOcean) -> None:
    client = _pydo(api)
    made = client.spaces_key.create({"name": "edge-config", "grants": [_grant("cfg", "read")]})
    key = made["key"]
    assert (key["name"], key["grants"]) == ("edge-config", [_grant("cfg", "read")])
    assert key["access_key"].startswith("DO") and len(key["secret_key"]) == 43
    shown = client.spaces_key.get(key["access_key"])["key"]
    assert shown["secret_key"] == ""  # shown once, at creation
    changed = client.spaces_key.update(
        key["access_key"], {"name": "edge-config", "grants": [_grant("cfg", "readwrite")]}
    )
    assert changed["key"]["grants"] == [_grant("cfg", "readwrite")]
    listed = client.spaces_key.list()
    assert [item["access_key"] for item in listed["keys"]] == [key["access_key"]]
    client.spaces_key.delete(key["access_key"])
    assert client.spaces_key.get(key["access_key"])["id"] == "not_found"  # pydo returns a 404
    posted = [
        call for call in api.calls if call.path == "/v2/spaces/keys" and call.method == "POST"
    ]
    assert posted[0].body == {"name": "edge-config", "grants": [_grant("cfg", "read")]}


@pytest.mark.parametrize(
    "body",
    [
        {"name": "k", "grants": []},
        {"name": "k", "grants": [_grant("cfg", "admin")]},
        {"name": "k", "grants": [_grant("", "read")]},
        {"grants": [_grant("cfg", "read")]},
    ],
    ids=["no-grant", "unknown-permission", "scoped-without-bucket", "no-name"],
)
def test_a_key_the_api_would_refuse_is_refused(api: FakeDigitalOcean, body: dict[str, Any]) -> None:
    with pytest.raises(HttpResponseError) as raised:
        _pydo(api).spaces_key.create(body)
    assert raised.value.status_code == 422
    assert api.state.spaces_keys == {}


# ---------------------------------------------------------------------------
# The S3 side, as the provider reaches it
# ---------------------------------------------------------------------------


def test_buckets_and_objects_are_reached_by_their_own_host_through_the_proxy(
    spaces: FakeSpaces,
) -> None:
    client = spaces.client()
    client.create_bucket(
        Bucket="host-style", CreateBucketConfiguration={"LocationConstraint": "ams3"}
    )
    client.put_object(
        Bucket="host-style", Key="edge/config.json", Body=b"{}", Metadata={"mac": "abc"}
    )
    seen = client.head_object(Bucket="host-style", Key="edge/config.json")
    assert seen["Metadata"] == {"mac": "abc"}
    # Addressed by its own host, https://host-style.ams3.digitaloceanspaces.com/...
    assert client.meta.endpoint_url == "https://ams3.digitaloceanspaces.com"
    assert client.meta.config.s3 == {"addressing_style": "virtual"}


def test_a_wrong_secret_is_refused(spaces: FakeSpaces) -> None:
    with pytest.raises(botocore.exceptions.ClientError, match="SignatureDoesNotMatch"):
        spaces.client((spaces.admin[0], "not-the-secret")).list_buckets()


def test_a_key_the_api_made_opens_exactly_its_grant(
    api: FakeDigitalOcean, spaces: FakeSpaces
) -> None:
    admin = spaces.client()
    for bucket in ("granted", "other"):
        admin.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "ams3"})
        admin.put_object(Bucket=bucket, Key="object", Body=b"data")
    spaces.attach(api)
    made = _pydo(api).spaces_key.create({"name": "reader", "grants": [_grant("granted", "read")]})
    pair = (made["key"]["access_key"], made["key"]["secret_key"])
    assert spaces.minted["reader"] == pair
    reader = spaces.client(pair)
    assert reader.get_object(Bucket="granted", Key="object")["Body"].read() == b"data"
    with pytest.raises(botocore.exceptions.ClientError, match="AccessDenied"):
        reader.put_object(Bucket="granted", Key="object", Body=b"changed")
    with pytest.raises(botocore.exceptions.ClientError, match="AccessDenied"):
        reader.get_object(Bucket="other", Key="object")


def test_the_proxy_tunnels_nothing_but_spaces(spaces: FakeSpaces) -> None:
    port = int(spaces.proxy.rsplit(":", 1)[1])
    for target in ("example.com:443", "ams3.digitaloceanspaces.com:80", "127.0.0.1:22"):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
            connection.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
            assert connection.recv(64).startswith(b"HTTP/1.1 403 Forbidden"), target
