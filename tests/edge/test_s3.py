"""The edge's S3 client against a real S3 API (moto on 127.0.0.1, signatures enforced)."""

from __future__ import annotations

import ast
import os
import socket
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from support.config import ROOT
from support.moto_s3 import REGION, S3Server

from homelab_tunnel.edge import s3

MODULE = ROOT / "homelab_tunnel/edge/s3.py"


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "homelab_tunnel.edge.s3", *args],
        env={"PATH": os.environ["PATH"], **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def env(s3_server: S3Server) -> dict[str, str]:
    return s3_server.env(s3_server.new_bucket())


@pytest.fixture
def payload(tmp_path: Path) -> Path:
    path = tmp_path / "payload.bin"
    path.write_bytes(b"noise key\x00\xff" * 1000)
    return path


# ---------------------------------------------------------------------------
# The signature is AWS's, byte for byte
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "key", "query", "body"),
    [
        ("PUT", "homelab-edge/keys/noise_private.key.age", {}, b"ciphertext"),
        ("GET", "homelab-edge/odd name+plus=equals~tilde.txt", {}, b""),
        (
            "GET",
            "",
            {"list-type": "2", "prefix": "homelab-edge/keys/", "encoding-type": "url"},
            b"",
        ),
        ("HEAD", "homelab-edge/keys/manifest.sha256", {}, b""),
        ("DELETE", "homelab-edge/pre-upgrade/0.28.0-to-0.29.2.sqlite", {}, b""),
    ],
)
def test_signature_is_the_one_botocore_computes(
    method: str, key: str, query: dict[str, str], body: bytes
) -> None:
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    settings = s3.Settings("http://127.0.0.1:9000", REGION, "backups", "AKIDEXAMPLE", "secret/+=")
    url = "http://127.0.0.1:9000" + s3.object_path(settings, key)
    if query:
        url += "?" + s3.canonical_query(query)
    theirs = AWSRequest(method=method, url=url, data=body)
    S3SigV4Auth(Credentials("AKIDEXAMPLE", "secret/+="), "s3", REGION).add_auth(theirs)
    when = datetime.strptime(theirs.headers["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    payload_hash = theirs.headers["X-Amz-Content-SHA256"]
    ours = s3.signed_headers(
        settings, method, s3.object_path(settings, key), query, payload_hash, when
    )
    assert ours["authorization"] == theirs.headers["Authorization"]


# ---------------------------------------------------------------------------
# Every operation, through the CLI the scripts use
# ---------------------------------------------------------------------------


def test_put_head_list_get_delete_round_trip(
    env: dict[str, str], payload: Path, tmp_path: Path
) -> None:
    key = "homelab-edge/keys/noise_private.key.age"
    assert _cli(env, "put", key, str(payload)).returncode == 0
    head = _cli(env, "head", key)
    assert head.returncode == 0
    modified, size, name = head.stdout.split()
    assert (size, name) == (str(payload.stat().st_size), key)
    assert datetime.strptime(modified, "%Y-%m-%dT%H:%M:%SZ")
    listed = _cli(env, "list", "homelab-edge/")
    assert listed.stdout.splitlines() == [f"{modified} {size} {key}"]
    target = tmp_path / "back.bin"
    assert _cli(env, "get", key, str(target)).returncode == 0
    assert target.read_bytes() == payload.read_bytes()
    assert _cli(env, "delete", key).returncode == 0
    assert _cli(env, "head", key).returncode == 3
    assert _cli(env, "list", "homelab-edge/").stdout == ""


def test_keys_with_blanks_and_signs_round_trip(
    env: dict[str, str], payload: Path, tmp_path: Path
) -> None:
    key = "homelab-edge/pre-upgrade/a b+c=d~e.sqlite"
    assert _cli(env, "put", key, str(payload)).returncode == 0
    assert _cli(env, "get", key, str(tmp_path / "x")).returncode == 0
    assert _cli(env, "list", "homelab-edge/pre-upgrade/a b").stdout.endswith(f" {key}\n")


def test_list_reads_every_page(
    env: dict[str, str], payload: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = s3.Settings.from_env(env)
    for index in range(3):
        s3.put(settings, f"p/{index}", payload)
    pages: list[dict[str, str]] = []
    real = s3.request

    def one_per_page(*args: object, **kwargs: object) -> s3.Response:
        query = dict(kwargs.get("query") or {})  # type: ignore[call-overload]
        pages.append(query)
        return real(*args, **{**kwargs, "query": {**query, "max-keys": "1"}})  # type: ignore[arg-type]

    monkeypatch.setattr(s3, "request", one_per_page)
    assert [key for _, _, key in s3.listing(settings, "p/")] == ["p/0", "p/1", "p/2"]
    assert len(pages) == 3 and "continuation-token" in pages[-1]


# Clear the screen, ring the bell, a byte XML 1.0 cannot carry, a tab.
HOSTILE_KEYS = [
    "homelab-edge/keys/evil\x1b[2J\x07.age",
    "homelab-edge/keys/x\x01y",
    "homelab-edge/keys/tab\there",
]


def test_keys_with_control_characters_list_escaped_not_a_crash(
    env: dict[str, str], payload: Path
) -> None:
    settings = s3.Settings.from_env(env)
    for key in HOSTILE_KEYS:
        s3.put(settings, key, payload)
    assert sorted(key for _, _, key in s3.listing(settings, "homelab-edge/")) == sorted(
        HOSTILE_KEYS
    )
    listed = _cli(env, "list", "homelab-edge/")
    assert listed.returncode == 0, listed.stderr
    names = sorted(line.split(" ", 2)[2] for line in listed.stdout.splitlines())
    assert names == [
        "homelab-edge/keys/evil\\x1b[2J\\x07.age",
        "homelab-edge/keys/tab\\there",
        "homelab-edge/keys/x\\x01y",
    ]
    assert not any(char in listed.stdout for char in "\x1b\x07\x01\t")


def test_negative_twin_a_listing_that_names_such_a_key_plainly_is_not_xml(
    env: dict[str, str], payload: Path
) -> None:
    import xml.etree.ElementTree as ET

    settings = s3.Settings.from_env(env)
    s3.put(settings, HOSTILE_KEYS[0], payload)
    plain = s3.request(settings, "GET", query={"list-type": "2", "prefix": "homelab-edge/"})
    assert plain.status == 200
    with pytest.raises(ET.ParseError):
        ET.fromstring(plain.body)  # what the listing used to parse


def test_a_key_with_percent_and_plus_signs_is_decoded_exactly_once(
    env: dict[str, str], payload: Path
) -> None:
    key = "homelab-edge/pre-upgrade/a%41b c+d%2B.sqlite"
    s3.put(s3.Settings.from_env(env), key, payload)
    assert [name for _, _, name in s3.listing(s3.Settings.from_env(env), "homelab-edge/")] == [key]


def _answer(body: bytes) -> s3.Response:
    return s3.Response(200, {}, body)


def test_a_listing_the_server_did_not_encode_is_read_as_it_is(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    body = (
        b'<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Contents>'
        b"<Key>p/a%41+b</Key><LastModified>2026-11-29T21:00:00.000Z</LastModified>"
        b"<Size>3</Size></Contents><IsTruncated>false</IsTruncated></ListBucketResult>"
    )
    monkeypatch.setattr(s3, "request", lambda *args, **kwargs: _answer(body))
    listed = s3.listing(s3.Settings.from_env(env), "p/")
    assert listed == [("2026-11-29T21:00:00Z", 3, "p/a%41+b")]


def test_an_answer_that_is_not_xml_is_exit_1_in_one_line(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(s3, "request", lambda *args, **kwargs: _answer(b"<Key>\x01</Key>"))
    monkeypatch.setattr(os, "environ", env)
    assert s3.main(["list", "p/"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("s3: list p/: the answer is not XML (")
    assert len(err.splitlines()) == 1


def test_a_missing_object_is_exit_3_and_leaves_no_file(env: dict[str, str], tmp_path: Path) -> None:
    target = tmp_path / "kept"
    target.write_text("before")
    got = _cli(env, "get", "homelab-edge/keys/nothing.age", str(target))
    assert (got.returncode, got.stderr) == (3, "s3: get homelab-edge/keys/nothing.age: not found\n")
    assert target.read_text() == "before"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept"]
    assert _cli(env, "head", "homelab-edge/keys/nothing.age").returncode == 3


def test_a_wrong_secret_gets_403_and_is_never_printed(env: dict[str, str], payload: Path) -> None:
    wrong = {**env, "BACKUP_SECRET_ACCESS_KEY": "not-the-secret-0123456789"}
    for args in (("put", "k", str(payload)), ("list", ""), ("head", "k")):
        done = _cli(wrong, *args)
        assert done.returncode == 1, done.stderr
        assert "HTTP 403" in done.stderr
        for secret in (wrong["BACKUP_SECRET_ACCESS_KEY"], env["BACKUP_SECRET_ACCESS_KEY"]):
            assert secret not in done.stdout + done.stderr
    assert "SignatureDoesNotMatch" in _cli(wrong, "put", "k", str(payload)).stderr


def test_the_right_secret_is_not_printed_either(env: dict[str, str], payload: Path) -> None:
    outputs = [
        _cli(env, *args)
        for args in (("put", "k", str(payload)), ("head", "k"), ("list", ""), ("bogus",))
    ]
    assert all(env["BACKUP_SECRET_ACCESS_KEY"] not in o.stdout + o.stderr for o in outputs)
    assert "secret_key" not in repr(s3.Settings.from_env(env))


def test_missing_settings_are_named_with_exit_2(env: dict[str, str]) -> None:
    partial = {k: v for k, v in env.items() if k not in ("BACKUP_BUCKET", "BACKUP_REGION")}
    done = _cli(partial, "head", "k")
    assert (done.returncode, done.stderr) == (2, "s3: not set: BACKUP_REGION, BACKUP_BUCKET\n")


@pytest.mark.parametrize(
    "endpoint",
    ["http://ams3.digitaloceanspaces.com", "ftp://127.0.0.1", "https://host/path", "nyc3"],
)
def test_an_endpoint_that_is_not_https_or_loopback_is_refused(
    env: dict[str, str], endpoint: str
) -> None:
    done = _cli({**env, "BACKUP_ENDPOINT": endpoint}, "head", "k")
    assert done.returncode == 2
    assert "BACKUP_ENDPOINT must be https://HOST[:PORT]" in done.stderr


@pytest.mark.parametrize(
    "args", [[], ["put", "k"], ["get", "k"], ["head"], ["list", "a", "b"], ["copy", "a", "b"]]
)
def test_usage_errors_exit_2(env: dict[str, str], args: list[str]) -> None:
    done = _cli(env, *args)
    assert done.returncode == 2
    assert done.stderr.startswith("s3: usage: python3 -m homelab_tunnel.edge.s3 put KEY FILE")


def test_an_unreachable_endpoint_fails_after_retrying(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    waits: list[float] = []
    monkeypatch.setattr(s3.time, "sleep", waits.append)
    monkeypatch.setattr(os, "environ", {**env, "BACKUP_ENDPOINT": f"http://127.0.0.1:{port}"})
    assert s3.main(["head", "k"]) == 1
    assert waits == [1, 2]
    assert f"s3: no answer from http://127.0.0.1:{port}:" in capsys.readouterr().err


def test_an_unreadable_upload_is_exit_1(env: dict[str, str], tmp_path: Path) -> None:
    done = _cli(env, "put", "k", str(tmp_path / "missing"))
    assert done.returncode == 1
    assert "No such file or directory" in done.stderr


def test_module_stays_small() -> None:
    """The edge carries it in user_data: under 400 lines, every function under 60."""
    source = MODULE.read_text()
    assert len(source.splitlines()) < 400
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef):
            assert node.end_lineno is not None
            assert node.end_lineno - node.lineno < 60, node.name
