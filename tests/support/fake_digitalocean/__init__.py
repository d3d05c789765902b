"""A stateful DigitalOcean API v2 stand-in on 127.0.0.1, over TLS, for preflight and Terraform.

Preflight (through pydo) reads the account, keys, regions, zones, records
and volumes; the real Terraform provider creates, reads, updates and deletes
the edge's resources through godo, and a fake that answers it must be
faithful in the details the provider depends on: envelope keys, integer
versus string ids, status codes, `links.pages`, fields read without a nil
check, and what the platform does on its own (deleting a droplet detaches
its volume and frees its reserved IP). Each module holds one resource family
and says where its shapes come from; `server` holds the HTTPS side.

Everything finishes at once: a droplet reads back "active" and an action
"completed" on the first poll (the provider still sleeps 10 s before it).
"""

from support.fake_digitalocean.account import (
    FRA1_SIZES,
    TOKEN,
    FakeAccount,
    record,
    region,
    ssh_key,
    zone_defaults,
)
from support.fake_digitalocean.core import FORBIDDEN, NOT_FOUND, RATE_LIMITED, UNAUTHORIZED
from support.fake_digitalocean.server import FAST, Call, FakeDigitalOcean, make_certificate

__all__ = [
    "FAST",
    "FORBIDDEN",
    "FRA1_SIZES",
    "NOT_FOUND",
    "RATE_LIMITED",
    "TOKEN",
    "UNAUTHORIZED",
    "Call",
    "FakeAccount",
    "FakeDigitalOcean",
    "make_certificate",
    "record",
    "region",
    "ssh_key",
    "zone_defaults",
]
