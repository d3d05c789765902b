"""What a Spaces change opens: bucket and object ACLs, bucket policies, key grants.

A bucket is private unless its canned ACL or a policy says otherwise, and a
key reaches only what its grants name. So a plan exposes the backups when an
ACL stops being private, a policy lets anyone in, or a key reaches more: a
higher permission (read < readwrite < fullaccess), a bucket it could not
touch, or the whole account (a grant on the bucket "" or any `fullaccess`
grant: DigitalOcean applies fullaccess over every scoped grant, per its API
reference for POST /v2/spaces/keys).

Nothing here prints a value a reviewer should not see: only bucket names,
object keys, permissions and policy actions.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

PERMISSIONS = ("read", "readwrite", "fullaccess")  # weakest first
PRIVATE = "private"


def acl_opened(before: Mapping[str, Any], after: Mapping[str, Any]) -> str | None:
    """The new canned ACL when a change makes a bucket or object other than private."""
    acl = after.get("acl")
    if acl in (None, PRIVATE) or acl == before.get("acl"):
        return None
    return str(acl)


def widened_grants(before: Any, after: Any) -> list[str]:
    """One description per way a key reaches more after than before."""
    old, new = _grants(before), _grants(after)
    if _account_wide(old):
        return []  # it already reached everything
    if _account_wide(new):
        return ["full access to every bucket of the account"]
    found = []
    for bucket, permission in sorted(new.items()):
        was = old.get(bucket)
        if _rank(permission) < 0:
            continue  # an empty permission grants nothing
        if was is None:
            found.append(f"{permission} on bucket {bucket}, which it could not touch before")
        elif _rank(permission) > _rank(was):
            found.append(f"{permission} on bucket {bucket} (was {was})")
    return found


def account_wide(grants: Any) -> bool:
    return _account_wide(_grants(grants))


def _grants(value: Any) -> dict[str, str]:
    """bucket -> the strongest permission granted on it."""
    found: dict[str, str] = {}
    for grant in value if isinstance(value, list) else []:
        if not isinstance(grant, dict):
            continue
        bucket, permission = str(grant.get("bucket") or ""), str(grant.get("permission") or "")
        if bucket not in found or _rank(permission) > _rank(found[bucket]):
            found[bucket] = permission
    return found


def _account_wide(grants: Mapping[str, str]) -> bool:
    return "" in grants or "fullaccess" in grants.values()


def _rank(permission: str) -> int:
    """read 0, readwrite 1, fullaccess 2; an empty grant nothing; anything else the worst."""
    if permission == "":
        return -1
    return PERMISSIONS.index(permission) if permission in PERMISSIONS else len(PERMISSIONS)


def public_statements(policy: Any) -> set[str] | None:
    """What a bucket policy lets anyone do ("s3:GetObject on arn:..."); None if unreadable."""
    if policy is None:
        return set()
    try:
        document = json.loads(policy) if isinstance(policy, str) else None
    except (ValueError, RecursionError):
        document = None
    if not isinstance(document, dict):
        return None
    statements = document.get("Statement")
    statements = statements if isinstance(statements, list) else [statements]
    found = set()
    for statement in statements:
        if not isinstance(statement, dict) or statement.get("Effect") != "Allow":
            continue
        if _anyone(statement.get("Principal")):
            actions = ", ".join(_strings(statement.get("Action"))) or "anything"
            resources = ", ".join(_strings(statement.get("Resource"))) or "the bucket"
            found.add(f"{actions} on {resources}")
    return found


def denies(policy: Any) -> bool:
    """Whether a bucket policy holds a Deny statement (or cannot be read)."""
    try:
        document = json.loads(policy) if isinstance(policy, str) else {}
    except (ValueError, RecursionError):
        return True
    statements = document.get("Statement") if isinstance(document, dict) else None
    statements = statements if isinstance(statements, list) else [statements]
    return any(isinstance(s, dict) and s.get("Effect") == "Deny" for s in statements)


def _anyone(principal: Any) -> bool:
    if principal == "*":
        return True
    if isinstance(principal, dict):
        return any("*" in _strings(value) for value in principal.values())
    return False


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [str(item) for item in value] if isinstance(value, list) else []
