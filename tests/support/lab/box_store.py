"""The lab's S3 store, from inside its box: `python box_store.py setup | list PREFIX | get KEY OUT
| put KEY FILE`.

Run with this virtualenv's Python (boto3, moto) and PYTHONPATH=tests; settings
come from the environment: STORE_ENDPOINT, STORE_CA, STORE_REGION,
STORE_BUCKET and, after setup, STORE_ACCESS_KEY / STORE_SECRET_KEY. Each
command prints one JSON document.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from support.moto_s3 import enforce_signatures


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
    """Signatures on, the edge's IAM user and key, its versioned bucket."""
    access_key, secret_key = enforce_signatures(
        os.environ["STORE_ENDPOINT"], os.environ["STORE_CA"]
    )
    client = _client(access_key, secret_key)
    bucket = os.environ["STORE_BUCKET"]
    location = {"LocationConstraint": os.environ["STORE_REGION"]}
    client.create_bucket(Bucket=bucket, CreateBucketConfiguration=location)
    client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    print(json.dumps({"access_key": access_key, "secret_key": secret_key}))


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


def put(key: str, source: str) -> None:
    """With the bucket's key pair alone: what a leaked key lets anyone write."""
    _store().upload_file(source, os.environ["STORE_BUCKET"], key)
    print(json.dumps({"key": key, "file": source}))


COMMANDS = {"setup": setup, "list": listing, "get": get, "put": put}

if __name__ == "__main__":
    COMMANDS[sys.argv[1]](*sys.argv[2:])  # type: ignore[operator]
