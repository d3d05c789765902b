"""The edge's S3 client for its backup bucket: SigV4, path-style, standard library only.

  python3 -m homelab_tunnel.edge.s3 put KEY FILE | get KEY FILE | head KEY | list PREFIX
  python3 -m homelab_tunnel.edge.s3 delete KEY

Settings: BACKUP_ENDPOINT, BACKUP_REGION, BACKUP_BUCKET, BACKUP_ACCESS_KEY_ID
and BACKUP_SECRET_ACCESS_KEY, read from the file HOMELAB_TUNNEL_BACKUP_ENV
names (backup.env, through envfile.py: the secret never enters a process
environment), else from the environment. Exit codes: 0 ok, 1 failed, 2 usage,
3 not found. Nothing printed ever holds the secret.

Path-style (https://<region>.digitaloceanspaces.com/<bucket>/<key>): Spaces
serves API requests both path-style and virtual-host style
(docs.digitalocean.com/products/spaces/details/limits), so neither is required;
path-style keeps the host the regional endpoint for every bucket, and the same
code talks to a test S3 on 127.0.0.1. Each request signs the SHA-256 of its whole body
(x-amz-content-sha256), with no aws-chunked encoding or trailing checksums:
Spaces refuses uploads from the AWS SDKs that send those by default (the
warning on its API reference page). Requests are signed with the region slug.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import os
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import IO
from urllib.parse import quote, unquote_plus, urlsplit

from homelab_tunnel.edge import envfile
from homelab_tunnel.findings import one_line

OK, FAILED, USAGE, NOT_FOUND = 0, 1, 2, 3
TIMEOUT = 30.0
ATTEMPTS = 3  # a dropped connection or a 5xx is tried again after 1 s, then 2 s
UNRESERVED = "-_.~"
LOOPBACK = {"127.0.0.1", "::1", "localhost"}
USAGE_TEXT = (
    "usage: python3 -m homelab_tunnel.edge.s3 put KEY FILE | get KEY FILE | head KEY | "
    "list PREFIX | delete KEY  (settings: BACKUP_* in the environment)"
)


class UsageError(Exception):
    """Bad arguments or settings: exit 2."""


class S3Error(Exception):
    """The request failed: an HTTP status with S3's error code, or no answer at all."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Settings:
    endpoint: str
    region: str
    bucket: str
    access_key: str
    secret_key: str = field(repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str], prefix: str = "BACKUP_") -> Settings:
        """From `<prefix>ENDPOINT`, `REGION`, `BUCKET`, `ACCESS_KEY_ID`, `SECRET_ACCESS_KEY`:
        BACKUP_ for the backup bucket (backup.env), CHANNEL_ for the config (channel.env)."""
        names = ("ENDPOINT", "REGION", "BUCKET", "ACCESS_KEY_ID", "SECRET_ACCESS_KEY")
        missing = [f"{prefix}{name}" for name in names if not env.get(f"{prefix}{name}")]
        if missing:
            raise UsageError(f"not set: {', '.join(missing)}")
        endpoint = env[f"{prefix}ENDPOINT"].rstrip("/")
        parts = urlsplit(endpoint)
        plain_ok = parts.scheme == "http" and parts.hostname in LOOPBACK
        if not (parts.scheme == "https" or plain_ok) or not parts.hostname or parts.path:
            raise UsageError(
                f"{prefix}ENDPOINT must be https://HOST[:PORT] (plain http only to loopback)"
            )
        return cls(
            endpoint,
            env[f"{prefix}REGION"],
            env[f"{prefix}BUCKET"],
            env[f"{prefix}ACCESS_KEY_ID"],
            env[f"{prefix}SECRET_ACCESS_KEY"],
        )


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


def canonical_query(query: Mapping[str, str]) -> str:
    pairs = sorted((quote(k, safe=UNRESERVED), quote(v, safe=UNRESERVED)) for k, v in query.items())
    return "&".join(f"{k}={v}" for k, v in pairs)


def signed_headers(
    settings: Settings,
    method: str,
    path: str,
    query: Mapping[str, str],
    payload_hash: str,
    now: datetime,
) -> dict[str, str]:
    """The headers of a SigV4-signed request (AWS's "Signature Version 4" for S3)."""
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    day = stamp[:8]
    headers = {
        "host": urlsplit(settings.endpoint).netloc,
        "x-amz-content-sha256": payload_hash,
        "x-amz-date": stamp,
    }
    names = ";".join(sorted(headers))
    canonical = "\n".join(
        [
            method,
            path,
            canonical_query(query),
            "".join(f"{name}:{headers[name]}\n" for name in sorted(headers)),
            names,
            payload_hash,
        ]
    )
    scope = f"{day}/{settings.region}/s3/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = ("AWS4" + settings.secret_key).encode()
    for part in (day, settings.region, "s3", "aws4_request"):
        key = _hmac(key, part)
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={settings.access_key}/{scope}, "
        f"SignedHeaders={names}, Signature={signature}"
    )
    return headers


def object_path(settings: Settings, key: str = "") -> str:
    return quote(
        f"/{settings.bucket}/{key}" if key else f"/{settings.bucket}", safe="/" + UNRESERVED
    )


def request(
    settings: Settings,
    method: str,
    key: str = "",
    query: Mapping[str, str] | None = None,
    upload: Path | None = None,
    download: IO[bytes] | None = None,
) -> Response:
    """One request, tried again on a dropped connection or a 5xx; 2xx/3xx/4xx are returned."""
    query = dict(query or {})
    payload_hash = _sha256(upload) if upload else hashlib.sha256(b"").hexdigest()
    for attempt in range(1, ATTEMPTS + 1):
        try:
            answer = _send(settings, method, key, query, payload_hash, upload, download)
        except (OSError, http.client.HTTPException) as exc:
            if attempt == ATTEMPTS:
                raise S3Error(0, f"no answer from {settings.endpoint}: {exc}") from None
        else:
            if answer.status < 500 or attempt == ATTEMPTS:
                return answer
        time.sleep(2 ** (attempt - 1))
    raise AssertionError("unreachable")  # pragma: no cover


def _send(
    settings: Settings,
    method: str,
    key: str,
    query: dict[str, str],
    payload_hash: str,
    upload: Path | None,
    download: IO[bytes] | None,
) -> Response:
    parts = urlsplit(settings.endpoint)
    path = object_path(settings, key)
    headers = signed_headers(settings, method, path, query, payload_hash, datetime.now(UTC))
    connection_class = (
        http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    )
    assert parts.hostname is not None  # checked in Settings.from_env
    connection = connection_class(parts.hostname, parts.port, timeout=TIMEOUT)
    try:
        target = path + (f"?{canonical_query(query)}" if query else "")
        if upload is not None:
            headers["content-length"] = str(upload.stat().st_size)
            with upload.open("rb") as body:
                connection.request(method, target, body=body, headers=headers)
        else:
            connection.request(method, target, headers=headers)
        reply = connection.getresponse()
        if download is not None and reply.status == 200:
            download.seek(0)
            download.truncate()
            while chunk := reply.read(1 << 16):
                download.write(chunk)
            body_bytes = b""
        else:
            body_bytes = reply.read()
        return Response(reply.status, {k.lower(): v for k, v in reply.getheaders()}, body_bytes)
    finally:
        connection.close()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 16):
            digest.update(chunk)
    return digest.hexdigest()


def check(answer: Response, what: str) -> None:
    if answer.status == 404:
        raise S3Error(404, f"{what}: not found")
    if answer.status >= 300:
        code, message = _error_of(answer.body)
        raise S3Error(answer.status, f"{what}: HTTP {answer.status} {code}: {message}".rstrip(": "))


def _error_of(body: bytes) -> tuple[str, str]:
    try:
        root = ET.fromstring(body)  # noqa: S314 - the bucket's own error document
    except ET.ParseError:
        return "", ""
    return root.findtext("Code") or "", root.findtext("Message") or ""


def put(settings: Settings, key: str, source: Path) -> None:
    check(request(settings, "PUT", key, upload=source), f"put {key}")


def get(settings: Settings, key: str, target: Path) -> None:
    """Download to `target` through a temporary file beside it: all or nothing."""
    handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - renamed into place below
        dir=target.parent, prefix=f".{target.name}.", delete=False
    )
    try:
        with handle:
            check(request(settings, "GET", key, download=handle), f"get {key}")
        Path(handle.name).replace(target)
    finally:
        Path(handle.name).unlink(missing_ok=True)


def head(settings: Settings, key: str) -> tuple[int, str]:
    """(size, last modified as RFC 3339) of an object."""
    answer = request(settings, "HEAD", key)
    check(answer, f"head {key}")
    modified = parsedate_to_datetime(answer.headers["last-modified"]).astimezone(UTC)
    return int(answer.headers.get("content-length", "0")), modified.strftime("%Y-%m-%dT%H:%M:%SZ")


def exists(settings: Settings, key: str) -> bool:
    """Whether an object is there: a 404 is an answer, any other failure is not."""
    try:
        head(settings, key)
    except S3Error as exc:
        if exc.status == 404:
            return False
        raise
    return True


def listing(settings: Settings, prefix: str) -> list[tuple[str, int, str]]:
    """(last modified, size, key) of every object under `prefix`, all pages.

    Keys are asked for URL-encoded (`encoding-type=url`): a key may hold
    characters XML 1.0 cannot carry (ESC, \\x01), and a listing that names one
    plainly is not XML at all. They are decoded as botocore does
    (`unquote_plus`, botocore/handlers.py `_decode_list_object`), and only when
    the answer says it encoded them.
    """
    found: list[tuple[str, int, str]] = []
    query = {"list-type": "2", "prefix": prefix, "encoding-type": "url"}
    while True:
        answer = request(settings, "GET", query=query)
        check(answer, f"list {prefix}")
        try:
            root = ET.fromstring(answer.body)  # noqa: S314 - the bucket's own listing
        except ET.ParseError as exc:
            raise S3Error(answer.status, f"list {prefix}: the answer is not XML ({exc})") from None
        ns = root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""
        encoded = root.findtext(f"{ns}EncodingType") == "url"
        for item in root.iter(f"{ns}Contents"):
            modified = (item.findtext(f"{ns}LastModified") or "").split(".")[0].rstrip("Z")
            size = int(item.findtext(f"{ns}Size") or 0)
            key = item.findtext(f"{ns}Key") or ""
            found.append((modified + "Z", size, unquote_plus(key) if encoded else key))
        token = root.findtext(f"{ns}NextContinuationToken")
        if root.findtext(f"{ns}IsTruncated") != "true" or not token:
            return found
        query["continuation-token"] = token


def delete(settings: Settings, key: str) -> None:
    check(request(settings, "DELETE", key), f"delete {key}")


def run(argv: Sequence[str], env: Mapping[str, str]) -> int:
    """The CLI: one operation, one line of output per object or on failure."""
    shapes = {"put": 2, "get": 2, "head": 1, "list": 1, "delete": 1}
    if not argv or shapes.get(argv[0]) != len(argv) - 1:
        raise UsageError(USAGE_TEXT)
    source = env.get("HOMELAB_TUNNEL_BACKUP_ENV")
    try:
        settings = Settings.from_env(envfile.read(Path(source)) if source else env)
    except envfile.EnvFileError as exc:
        raise UsageError(str(exc)) from None
    operation, key = argv[0], argv[1]
    if operation == "put":
        put(settings, key, Path(argv[2]))
    elif operation == "get":
        get(settings, key, Path(argv[2]))
    elif operation == "head":
        size, modified = head(settings, key)
        print(f"{modified} {size} {key}")
    elif operation == "list":
        # One line per object whatever its name holds: a newline or an escape
        # sequence in a key must not forge a line or drive a terminal.
        for modified, size, name in listing(settings, key):
            print(one_line(f"{modified} {size} {name}"))
    else:
        delete(settings, key)
    return OK


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return run(sys.argv[1:] if argv is None else argv, os.environ)
    except UsageError as exc:
        print(f"s3: {exc}", file=sys.stderr)
        return USAGE
    except S3Error as exc:
        print(f"s3: {exc}", file=sys.stderr)
        return NOT_FOUND if exc.status == 404 else FAILED
    except OSError as exc:
        print(f"s3: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr)
        return FAILED


if __name__ == "__main__":
    sys.exit(main())
