"""The values Terraform fills into user_data at plan time: one table, read by everyone.

None of them is in the config, `cdktf.out`, a log or a PR comment. Rendering
writes a placeholder; the stack swaps it for a reference to a sensitive
Terraform value; `check` sizes user_data with each at its longest; the tests
and the lab fill them the way Terraform would.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Secret:
    """A value only Terraform knows; `name` is also the stack's name for its reference."""

    name: str
    max_length: int
    description: str

    @property
    def placeholder(self) -> str:
        return f"@@{self.name}@@"


# What Terraform lets into the webhook's place (its validation of the variable,
# in infra/stacks/edge.py): https, at most this long, of URL characters that are
# literal in health.env for systemd: no blanks, quotes, backslashes, '$' or
# backticks. The length bound also lets `check` know user_data's final size.
WEBHOOK_URL_MAX_LENGTH = 512
WEBHOOK_URL_CHARACTERS = "A-Za-z0-9._~:/?#@!&*+,;=%-"
# Spaces access key ids are 20 characters and secrets 43; counted generously.
SPACES_KEY_MAX_LENGTH = 64

WEBHOOK_URL = Secret(
    "health_webhook_url",
    WEBHOOK_URL_MAX_LENGTH,
    "the health timer's webhook, from the sensitive variable health_webhook_url",
)
BACKUP_ACCESS_KEY = Secret(
    "backup_access_key_id",
    SPACES_KEY_MAX_LENGTH,
    "the backup bucket's scoped Spaces key: its id",
)
BACKUP_SECRET_KEY = Secret(
    "backup_secret_access_key",
    SPACES_KEY_MAX_LENGTH,
    "the backup bucket's scoped Spaces key: its secret",
)

# The secret half of a Spaces key made only for its randomness (infra/constructs/
# edge_secret.py): the edge derives its age identity and its MAC keys from it
# (edge/derive.py). Not a credential the edge ever uses, and never the bucket's.
EDGE_SECRET = Secret(
    "edge_secret",
    SPACES_KEY_MAX_LENGTH,
    "the edge's own secret: a Spaces key's secret, used for nothing but its randomness",
)

SECRETS: tuple[Secret, ...] = (WEBHOOK_URL, BACKUP_ACCESS_KEY, BACKUP_SECRET_KEY, EDGE_SECRET)


def fill(text: str, values: Mapping[Secret, str]) -> str:
    """`text` with each placeholder replaced as Terraform would replace it."""
    for secret, value in values.items():
        text = text.replace(secret.placeholder, value)
    return text


def longest_size(text: str) -> int:
    """The size in bytes of `text` once filled with the longest value each secret may take."""
    return len(text.encode()) + sum(
        text.count(secret.placeholder) * (secret.max_length - len(secret.placeholder.encode()))
        for secret in SECRETS
    )
