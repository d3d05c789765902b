"""The config channel, read side: the object Terraform writes, fetched and proven genuine.

Terraform keeps the edge's day-to-day config in one object of a private Spaces
bucket and updates it in place. The edge reads it with a key whose only grant
is `read`, so nothing holding the edge's credentials can rewrite what it
serves, and believes an object only with a MAC made from the edge secret:

    k   = sha256("homelab-tunnel/config/v1:" + edge secret)        (derive.py)
    mac = sha256(k + ":" + sha256(k + ":" + sha256(body) + ":" + webhook))

Terraform computes exactly this in HCL (infra/constructs/channel.py), where
`webhook` is the sensitive health webhook URL, carried in the object's
metadata beside the MAC so that rotating it needs no new body. Someone who can
write to the bucket without the edge secret (a leaked operator key) cannot make
a MAC; someone with the edge's own key cannot write. Body and metadata are both
checked, nothing is trusted before that.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from homelab_tunnel.edge import s3
from homelab_tunnel.edge.derive import derived_key, equal

PURPOSE = "config"
FORMAT = 1
MAC_HEADER = "x-amz-meta-mac"
WEBHOOK_HEADER = "x-amz-meta-webhook"
SETTINGS_PATH = Path("/etc/homelab-tunnel/channel.env")


class ChannelError(Exception):
    """The object is not one Terraform wrote for this edge, or cannot be read."""


@dataclass(frozen=True)
class Signed:
    """One version of the object as fetched: body and metadata, not yet believed."""

    body: bytes
    mac: str
    webhook: str = field(repr=False)
    etag: str = ""

    def to_json(self) -> dict[str, str]:
        return {
            "body": self.body.decode("utf-8", errors="replace"),
            "mac": self.mac,
            "webhook": self.webhook,
            "etag": self.etag,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Signed:
        return cls(
            str(data["body"]).encode(), str(data["mac"]), str(data["webhook"]), str(data["etag"])
        )


@dataclass(frozen=True)
class EdgeConfig:
    """A verified version: what the agent installs."""

    version: str
    document: Mapping[str, Any]
    signed: Signed

    @property
    def files(self) -> Mapping[str, str]:
        return dict(self.document["files"])

    @property
    def machines(self) -> list[str]:
        return [str(name) for name in self.document["machines"]]

    @property
    def domains(self) -> list[str]:
        return [str(site["domain"]) for site in self.document["sites"]]

    @property
    def webhook(self) -> str:
        return self.signed.webhook


def mac(key: str, body: bytes, webhook: str) -> str:
    """The object's MAC, as Terraform computes it."""
    body_sha = hashlib.sha256(body).hexdigest()
    inner = hashlib.sha256(f"{key}:{body_sha}:{webhook}".encode()).hexdigest()
    return hashlib.sha256(f"{key}:{inner}".encode()).hexdigest()


def verify(signed: Signed, secret: str, edge_name: str) -> EdgeConfig:
    """`signed` as an EdgeConfig if Terraform wrote it for this edge; ChannelError otherwise."""
    expected = mac(derived_key(secret, PURPOSE), signed.body, signed.webhook)
    if not equal(signed.mac, expected):
        raise ChannelError(
            "the config object's MAC does not match: it was not written by this edge's "
            "Terraform (tampered, or written with another key); refused"
        )
    try:
        document = json.loads(signed.body)
    except ValueError as exc:
        raise ChannelError(f"the config object is not JSON: {exc}") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ChannelError(f"the config object's format is not {FORMAT}; refused")
    if document.get("edge") != edge_name:
        raise ChannelError(
            f"the config object is for edge {document.get('edge')!r}, not {edge_name!r}; refused"
        )
    for key, kind in (("version", str), ("files", dict), ("machines", list), ("sites", list)):
        if not isinstance(document.get(key), kind):
            raise ChannelError(f"the config object has no {key} ({kind.__name__}); refused")
    return EdgeConfig(str(document["version"]), document, signed)


@dataclass(frozen=True)
class Channel:
    """Where the object is and how to read it (channel.env)."""

    settings: s3.Settings
    key: str

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Channel:
        if not env.get("CHANNEL_KEY"):
            raise s3.UsageError("not set: CHANNEL_KEY")
        return cls(s3.Settings.from_env(env, prefix="CHANNEL_"), env["CHANNEL_KEY"])

    def head(self) -> tuple[str, str]:
        """(ETag, MAC) of the current version: cheap enough to ask every few seconds.

        The MAC changes with the body and with the webhook, which lives in the
        metadata and leaves the ETag (the body's MD5) as it was.
        """
        answer = s3.request(self.settings, "HEAD", self.key)
        s3.check(answer, f"head {self.key}")
        return answer.headers.get("etag", ""), answer.headers.get(MAC_HEADER, "")

    def fetch(self) -> Signed:
        with tempfile.TemporaryFile() as body:
            answer = s3.request(self.settings, "GET", self.key, download=body)
            s3.check(answer, f"get {self.key}")
            body.seek(0)
            content = body.read()
        return Signed(
            content,
            answer.headers.get(MAC_HEADER, ""),
            answer.headers.get(WEBHOOK_HEADER, ""),
            answer.headers.get("etag", ""),
        )
