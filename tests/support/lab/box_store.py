"""The lab's S3 store, from inside its box: `python box_store.py COMMAND ARGS`.

Commands: setup, list, get, head, put, delete.

Run with this virtualenv's Python (boto3, moto) and PYTHONPATH=tests; settings
come from the environment: STORE_ENDPOINT, STORE_CA, STORE_REGION,
STORE_BUCKET and, after setup, STORE_ACCESS_KEY / STORE_SECRET_KEY. Each
command prints one JSON document.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from support.moto_s3 import enforce_signatures, scoped_key


def _client(access_key: str, secret_key: str) -> Any:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=os.environ["STORE_ENDPOINT"],
        region_name=os.environ["STORE_REGION"],
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        verify=os.environ["STORE_CA"],
    )


def _store() -> Any:
    return _client(os.environ["STORE_ACCESS_KEY"], os.environ["STORE_SECRET_KEY"])


def setup() -> None:
    """Signatures on; the buckets (versioned, as the stack's are); a key per grant.

    STORE_BUCKETS: the buckets, comma-separated. STORE_GRANTS: JSON
    {user: [bucket, "read" | "readwrite"]}, the Spaces keys Terraform would make.
    The admin key stands for the operator's own (Terraform's) Spaces key.
    """
    endpoint, ca = os.environ["STORE_ENDPOINT"], os.environ["STORE_CA"]
    admin = enforce_signatures(endpoint, ca)
    client = _client(*admin)
    location = {"LocationConstraint": os.environ["STORE_REGION"]}
    for bucket in os.environ["STORE_BUCKETS"].split(","):
        client.create_bucket(Bucket=bucket, CreateBucketConfiguration=location)
        client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    keys = {
        user: scoped_key(endpoint, admin, user=user, bucket=bucket, permission=grant, cafile=ca)
        for user, (bucket, grant) in json.loads(os.environ["STORE_GRANTS"]).items()
    }
    print(json.dumps({"admin": admin, "keys": keys}))


def put(bucket: str, key: str, source: str, metadata: str) -> None:
    """An object written with the key in STORE_ACCESS_KEY: the operator's (Terraform's), or
    a bucket's own key pair (what anyone holding it could write)."""
    _store().put_object(
        Bucket=bucket, Key=key, Body=Path(source).read_bytes(), Metadata=json.loads(metadata)
    )
    print(json.dumps({"key": key}))


def delete(bucket: str, key: str) -> None:
    _store().delete_object(Bucket=bucket, Key=key)
    print(json.dumps({"key": key}))


def head(key: str) -> None:
    """An object's ETag and metadata (the config object's MAC), as the edge's HEAD sees them."""
    answer = _store().head_object(Bucket=os.environ["STORE_BUCKET"], Key=key)
    print(json.dumps({"etag": answer["ETag"], "metadata": answer["Metadata"]}))


def listing(prefix: str) -> None:
    pages = _store().get_paginator("list_objects_v2")
    found = [
        {"key": item["Key"], "size": item["Size"], "modified": item["LastModified"].isoformat()}
        for page in pages.paginate(Bucket=os.environ["STORE_BUCKET"], Prefix=prefix)
        for item in page.get("Contents", [])
    ]
    print(json.dumps(found))


def get(key: str, out: str) -> None:
    _store().download_file(os.environ["STORE_BUCKET"], key, out)
    print(json.dumps({"key": key, "file": out}))


COMMANDS = {
    "setup": setup,
    "list": listing,
    "get": get,
    "head": head,
    "put": put,
    "delete": delete,
}

if __name__ == "__main__":
    COMMANDS[sys.argv[1]](*sys.argv[2:])  # type: ignore[operator]
