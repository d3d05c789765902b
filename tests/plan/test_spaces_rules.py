"""Spaces in a plan: buckets, keys, objects and policies, judged by what changes.

The backup bucket and its key start from what the stack synthesizes (so a
construct that stopped versioning the bucket would fail here), written the
way a plan shows state: references resolved, computed attributes filled in.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from support.plans import change, plan, summary_of
from typer.testing import CliRunner

from homelab_tunnel.cli import app
from homelab_tunnel.plan.model import Danger
from homelab_tunnel.plan.report import render

runner = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1"})
BUCKET_NAME = "homelab-edge-backup"


@pytest.fixture(scope="module")
def bucket(stack: dict[str, Any]) -> dict[str, Any]:
    """The stack's backup bucket as state holds it."""
    body = copy.deepcopy(stack["resource"]["digitalocean_spaces_bucket"]["backup"])
    body.pop("//", None)
    assert body["name"] == BUCKET_NAME
    # cdk.tf.json writes a one-block list as an object; plans show every block as a list.
    body["versioning"] = [body["versioning"]]
    for rule in body["lifecycle_rule"]:
        for name in ("expiration", "noncurrent_version_expiration"):
            rule[name] = [rule[name]] if name in rule else []
    return {
        **body,
        "id": BUCKET_NAME,
        "force_destroy": False,
        "cors_rule": [],
        "bucket_domain_name": f"{BUCKET_NAME}.ams3.digitaloceanspaces.com",
        "endpoint": "ams3.digitaloceanspaces.com",
        "urn": f"do:space:{BUCKET_NAME}",
    }


@pytest.fixture(scope="module")
def key(stack: dict[str, Any]) -> dict[str, Any]:
    """The stack's backup key as state holds it (the grant's reference resolved)."""
    body = copy.deepcopy(stack["resource"]["digitalocean_spaces_key"]["backup"])
    body.pop("//", None)
    (grant,) = body["grant"]
    assert grant == {
        "bucket": "${digitalocean_spaces_bucket.backup.name}",
        "permission": "readwrite",
    }
    return {
        **body,
        "grant": [{"bucket": BUCKET_NAME, "permission": "readwrite"}],
        "id": "DO00EXAMPLEKEY",
        "access_key": "DO00EXAMPLEKEY",
        "secret_key": "SECRET-never-printed",
        "created_at": "2026-11-29T21:00:00Z",
    }


def _judged(address: str, actions: list[str], **values: Any) -> tuple[Danger, str]:
    (only,) = summary_of(plan(change(address, actions, **values))).changes
    return only.danger, only.consequence


def _cli(tmp_path: Path, document: dict[str, Any], *args: str) -> Any:
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(document))
    return runner.invoke(app, ["plan-summary", str(path), *args])


# ---------------------------------------------------------------------------
# Buckets: losing a versioned one is data loss
# ---------------------------------------------------------------------------


def test_deleting_the_backup_bucket_is_data_loss_and_fails_the_data_loss_gate(
    bucket: dict[str, Any], tmp_path: Path
) -> None:
    document = plan(change("digitalocean_spaces_bucket.backup", ["delete"], before=bucket))
    danger, consequence = _judged("digitalocean_spaces_bucket.backup", ["delete"], before=bucket)
    assert danger is Danger.DATA_LOSS
    assert consequence.startswith(f"bucket {BUCKET_NAME} deleted: it is versioned")
    assert "only off-box copy of Headscale's database and keys" in consequence
    assert "without force_destroy the apply fails at the delete" in consequence
    result = _cli(tmp_path, document, "--fail-on", "data-loss")
    assert result.exit_code == 1
    assert "refusing a data loss change (--fail-on data-loss)" in result.stdout


def test_replacing_the_backup_bucket_is_data_loss_and_says_why(bucket: dict[str, Any]) -> None:
    danger, consequence = _judged(
        "digitalocean_spaces_bucket.backup",
        ["delete", "create"],
        before={**bucket, "force_destroy": True},
        after={**bucket, "region": "fra1"},
        replace_paths=[["region"]],
    )
    assert danger is Danger.DATA_LOSS
    assert consequence.startswith(f"bucket {BUCKET_NAME} replaced because region changed:")
    assert "force_destroy is on, so every object and every old version goes with it" in consequence


def test_negative_twin_deleting_an_unversioned_bucket_is_downtime(bucket: dict[str, Any]) -> None:
    config = {**bucket, "name": "homelab-edge-config", "versioning": [{"enabled": False}]}
    danger, consequence = _judged("digitalocean_spaces_bucket.config", ["delete"], before=config)
    assert danger is Danger.DOWNTIME
    assert consequence.startswith("bucket homelab-edge-config deleted: whatever reads from it")


def test_creating_the_stacks_bucket_is_safe(bucket: dict[str, Any]) -> None:
    assert _judged("digitalocean_spaces_bucket.backup", ["create"], after=bucket)[0] is Danger.SAFE


@pytest.mark.parametrize(
    ("edit", "says"),
    [
        ({"acl": "public-read"}, "made public-read: anyone on the internet can list and download"),
        ({"acl": "authenticated-read"}, "made authenticated-read: no longer private"),
        ({"force_destroy": True}, "has force_destroy on: deleting it"),
        ({"versioning": [{"enabled": False}]}, "has versioning suspended"),
    ],
    ids=["public-read", "other-acl", "force-destroy", "versioning-off"],
)
def test_a_bucket_made_easier_to_read_or_destroy_is_exposure(
    bucket: dict[str, Any], edit: dict[str, Any], says: str
) -> None:
    danger, consequence = _judged(
        "digitalocean_spaces_bucket.backup", ["update"], before=bucket, after={**bucket, **edit}
    )
    assert danger is Danger.EXPOSURE
    assert consequence.startswith(f"bucket {BUCKET_NAME} {says}")


def test_a_new_public_bucket_is_exposure(bucket: dict[str, Any]) -> None:
    after = {**bucket, "acl": "public-read"}
    assert _judged("digitalocean_spaces_bucket.x", ["create"], after=after)[0] is Danger.EXPOSURE


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ({"acl": "public-read"}, {"acl": "public-read"}),  # already public: nothing changes
        ({"acl": "public-read"}, {"acl": "private"}),
        ({"force_destroy": True}, {"force_destroy": True}),
        ({"force_destroy": True}, {"force_destroy": False}),
        ({}, {"lifecycle_rule": []}),
        ({}, {"versioning": []}),  # the provider suppresses this diff: versioning stays on
    ],
    ids=["still-public", "made-private", "still-forced", "unforced", "lifecycle", "no-block"],
)
def test_negative_twin_changes_that_open_nothing_stay_safe(
    bucket: dict[str, Any], before: dict[str, Any], after: dict[str, Any]
) -> None:
    danger, _ = _judged(
        "digitalocean_spaces_bucket.backup",
        ["update"],
        before={**bucket, **before},
        after={**bucket, **after},
    )
    assert danger is Danger.SAFE


# ---------------------------------------------------------------------------
# Keys: any widening is exposure
# ---------------------------------------------------------------------------


def _grants(*pairs: tuple[str, str]) -> list[dict[str, str]]:
    return [{"bucket": bucket, "permission": permission} for bucket, permission in pairs]


@pytest.mark.parametrize(
    ("before", "after", "says"),
    [
        (
            _grants((BUCKET_NAME, "read")),
            _grants((BUCKET_NAME, "readwrite")),
            f"now reaches readwrite on bucket {BUCKET_NAME} (was read)",
        ),
        (
            _grants((BUCKET_NAME, "readwrite")),
            _grants((BUCKET_NAME, "fullaccess")),
            "now reaches full access to every bucket of the account",
        ),
        (
            _grants((BUCKET_NAME, "readwrite")),
            _grants(("", "read")),
            "now reaches full access to every bucket of the account",
        ),
        (
            _grants((BUCKET_NAME, "readwrite")),
            _grants((BUCKET_NAME, "readwrite"), ("homelab-state", "read")),
            "now reaches read on bucket homelab-state, which it could not touch before",
        ),
        (
            _grants((BUCKET_NAME, "read")),
            _grants((BUCKET_NAME, "admin")),
            f"now reaches admin on bucket {BUCKET_NAME} (was read)",  # unknown: the worst
        ),
    ],
    ids=["read-to-readwrite", "to-fullaccess", "all-buckets", "new-bucket", "unknown-permission"],
)
def test_a_key_that_reaches_more_is_exposure(
    key: dict[str, Any], before: list[Any], after: list[Any], says: str
) -> None:
    danger, consequence = _judged(
        "digitalocean_spaces_key.backup",
        ["update"],
        before={**key, "grant": before},
        after={**key, "grant": after},
    )
    assert danger is Danger.EXPOSURE
    assert consequence.startswith(f"Spaces key {BUCKET_NAME} {says}")
    assert "anyone who can read the Terraform state" in consequence


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (_grants((BUCKET_NAME, "readwrite")), _grants((BUCKET_NAME, "read"))),
        (
            _grants((BUCKET_NAME, "read"), ("homelab-state", "read")),
            _grants(("homelab-state", "read"), (BUCKET_NAME, "read")),
        ),
        (_grants((BUCKET_NAME, "read")), _grants((BUCKET_NAME, "read"), ("other", ""))),
        (_grants(("", "fullaccess")), _grants((BUCKET_NAME, "fullaccess"))),
    ],
    ids=["narrowed", "reordered", "empty-permission", "still-full-access"],
)
def test_negative_twin_a_key_that_reaches_no_more_is_safe(
    key: dict[str, Any], before: list[Any], after: list[Any]
) -> None:
    danger, _ = _judged(
        "digitalocean_spaces_key.backup",
        ["update"],
        before={**key, "grant": before},
        after={**key, "grant": after},
    )
    assert danger is Danger.SAFE


def test_creating_the_stacks_key_is_safe_but_a_full_access_one_is_exposure(
    key: dict[str, Any],
) -> None:
    scoped = _judged("digitalocean_spaces_key.backup", ["create"], after=key)
    full = {**key, "grant": _grants(("", "fullaccess"))}
    wide = _judged("digitalocean_spaces_key.backup", ["create"], after=full)
    assert scoped[0] is Danger.SAFE
    assert wide[0] is Danger.EXPOSURE
    assert "created with full access to every bucket of the account" in wide[1]


def test_grants_known_only_after_apply_are_exposure(key: dict[str, Any]) -> None:
    danger, consequence = _judged(
        "digitalocean_spaces_key.backup",
        ["update"],
        before=key,
        after={**key, "grant": [{"bucket": None, "permission": "read"}]},
        after_unknown={"grant": [{"bucket": True}]},
    )
    assert danger is Danger.EXPOSURE
    assert "known only after apply" in consequence


def test_losing_the_key_is_downtime_for_whatever_uses_it(key: dict[str, Any]) -> None:
    deleted = _judged("digitalocean_spaces_key.backup", ["delete"], before=key)
    replaced = _judged(
        "digitalocean_spaces_key.backup", ["delete", "create"], before=key, after=key
    )
    assert deleted[0] is replaced[0] is Danger.DOWNTIME
    assert "the edge's backups" in deleted[1]
    assert "the edge gets it in user_data, which replaces the droplet" in replaced[1]


# ---------------------------------------------------------------------------
# Objects and policies
# ---------------------------------------------------------------------------

OBJECT = {
    "bucket": "homelab-edge-config",
    "key": "edge/config.json",
    "region": "ams3",
    "acl": "private",
    "content": '{"sites": ["blog.example.com"]}',
}


def test_an_object_made_public_is_exposure() -> None:
    danger, consequence = _judged(
        "digitalocean_spaces_bucket_object.config",
        ["update"],
        before=OBJECT,
        after={**OBJECT, "acl": "public-read"},
    )
    assert danger is Danger.EXPOSURE
    assert consequence.startswith(
        "object edge/config.json in bucket homelab-edge-config made public-read"
    )


def test_negative_twin_new_content_is_an_in_place_update_that_quotes_nothing() -> None:
    after = {**OBJECT, "content": '{"sites": ["shop.example.com"]}'}
    summary = summary_of(
        plan(
            change(
                "digitalocean_spaces_bucket_object.config", ["update"], before=OBJECT, after=after
            )
        )
    )
    assert summary.verdict is Danger.SAFE
    for output_format in ("text", "markdown", "json"):
        assert "shop.example.com" not in render(summary, output_format)


def test_a_deleted_object_is_downtime() -> None:
    danger, consequence = _judged(
        "digitalocean_spaces_bucket_object.config", ["delete"], before=OBJECT
    )
    assert danger is Danger.DOWNTIME
    assert "whatever reads it finds nothing" in consequence


def _policy(effect: str, principal: Any, action: str = "s3:GetObject") -> str:
    statement = {
        "Effect": effect,
        "Principal": principal,
        "Action": action,
        "Resource": f"arn:aws:s3:::{BUCKET_NAME}/*",
    }
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


POLICY = {"bucket": BUCKET_NAME, "region": "ams3"}


@pytest.mark.parametrize("principal", ["*", {"AWS": "*"}, {"AWS": ["*"]}])
def test_a_policy_that_lets_anyone_in_is_exposure(principal: Any) -> None:
    danger, consequence = _judged(
        "digitalocean_spaces_bucket_policy.backup",
        ["create"],
        after={**POLICY, "policy": _policy("Allow", principal)},
    )
    assert danger is Danger.EXPOSURE
    assert consequence == (
        f"policy of bucket {BUCKET_NAME} lets anyone: s3:GetObject on arn:aws:s3:::{BUCKET_NAME}/*"
    )


@pytest.mark.parametrize(
    "policy",
    [_policy("Deny", "*"), _policy("Allow", {"AWS": ["arn:aws:iam::123:user/edge"]})],
    ids=["deny", "named-principal"],
)
def test_negative_twin_a_policy_for_no_one_in_particular_is_safe(policy: str) -> None:
    danger, _ = _judged(
        "digitalocean_spaces_bucket_policy.backup", ["create"], after={**POLICY, "policy": policy}
    )
    assert danger is Danger.SAFE


def test_a_policy_the_plan_cannot_read_is_exposure() -> None:
    danger, consequence = _judged(
        "digitalocean_spaces_bucket_policy.backup",
        ["update"],
        before={**POLICY, "policy": _policy("Deny", "*")},
        after={**POLICY, "policy": "{not json"},
    )
    assert danger is Danger.EXPOSURE
    assert "cannot be read from the plan" in consequence


def test_deleting_a_policy_that_denies_is_exposure_one_that_allows_is_downtime() -> None:
    deny = {**POLICY, "policy": _policy("Deny", "*")}
    allow = {**POLICY, "policy": _policy("Allow", {"AWS": "arn:aws:iam::123:user/edge"})}
    denied = _judged("digitalocean_spaces_bucket_policy.backup", ["delete"], before=deny)
    allowed = _judged("digitalocean_spaces_bucket_policy.backup", ["delete"], before=allow)
    assert denied[0] is Danger.EXPOSURE
    assert "the Deny statements in it no longer apply" in denied[1]
    assert allowed[0] is Danger.DOWNTIME


# ---------------------------------------------------------------------------
# Sensitive values are never quoted in a consequence
# ---------------------------------------------------------------------------

RECORD = {"domain": "example.com", "name": "blog", "type": "A", "value": "203.0.113.10"}


@pytest.mark.parametrize(("sensitive", "shown"), [(True, False), (False, True)])
def test_a_value_terraform_marks_sensitive_is_never_quoted(sensitive: bool, shown: bool) -> None:
    entry = change(
        "digitalocean_record.blog",
        ["update"],
        before=RECORD,
        after={**RECORD, "value": "198.51.100.7"},
    )
    if sensitive:
        entry["change"]["after_sensitive"] = {"value": True}
    summary = summary_of(plan(entry))
    assert summary.verdict is Danger.ADDRESS_CHANGE
    for output_format in ("text", "markdown", "json"):
        assert ("198.51.100.7" in render(summary, output_format)) is shown
    if sensitive:
        assert "now points to a sensitive value" in summary.changes[0].consequence
