"""A real S3 API on 127.0.0.1 (moto's server, in a thread) that checks signatures.

Moto serves unauthenticated requests until told otherwise; its reset-auth
call lets the first few through (to create an IAM user, its policy and its
access key) and enforces SigV4 against IAM from then on, so a wrong secret
gets 403 SignatureDoesNotMatch as it would from Spaces.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import ssl
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

REGION = "ams3"


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    access_key: str
    secret_key: str

    def env(self, bucket: str, prefix: str = "homelab-edge") -> dict[str, str]:
        """backup.env's values for `bucket` on this server."""
        return {
            "BACKUP_ENDPOINT": self.endpoint,
            "BACKUP_REGION": REGION,
            "BACKUP_BUCKET": bucket,
            "BACKUP_PREFIX": prefix,
            "BACKUP_ACCESS_KEY_ID": self.access_key,
            "BACKUP_SECRET_ACCESS_KEY": self.secret_key,
        }

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
        )

    def read_only_key(self, bucket: str) -> tuple[str, str]:
        """A key that can only read `bucket`, as the edge's config key can."""
        return scoped_key(
            self.endpoint, (self.access_key, self.secret_key),
            user=f"reader-{next(_numbers)}", bucket=bucket, permission="read",
        )  # fmt: skip

    def new_bucket(self) -> str:
        name = f"backup-{next(_numbers)}"
        self.client().create_bucket(
            Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION}
        )
        return name


_numbers = itertools.count(1)


def _iam(endpoint: str, cafile: str | None) -> Any:
    import boto3

    return boto3.client(
        "iam",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="bootstrap",
        aws_secret_access_key="bootstrap",
        verify=cafile or True,
    )


def enforce_signatures(endpoint: str, cafile: str | None = None) -> tuple[str, str]:
    """Switch moto's signature checks on; the key pair of a new IAM user allowed s3:*.

    `cafile`: the CA of an https endpoint (the lab's store).
    """
    reset = urllib.request.Request(
        f"{endpoint}/moto-api/reset-auth",
        data=b"3",
        headers={"Content-Type": "text/plain"},
        method="POST",
    )
    # No proxy from the environment: the request must stay on loopback (or in the lab).
    handlers: list[urllib.request.BaseHandler] = [urllib.request.ProxyHandler({})]
    if cafile:
        handlers.append(
            urllib.request.HTTPSHandler(context=ssl.create_default_context(cafile=cafile))
        )
    with urllib.request.build_opener(*handlers).open(reset, timeout=10):
        pass
    iam = _iam(endpoint, cafile)
    iam.create_user(UserName="edge")
    # s3 for the edge's own tests, iam so that the same key can make narrower ones.
    policy = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["s3:*", "iam:*"], "Resource": "*"}
    ]}  # fmt: skip
    iam.put_user_policy(UserName="edge", PolicyName="s3", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName="edge")["AccessKey"]
    return str(key["AccessKeyId"]), str(key["SecretAccessKey"])


# What a Spaces key's grant allows, as IAM actions on one bucket.
GRANTS = {
    "read": ["s3:GetObject", "s3:GetObjectVersion", "s3:ListBucket"],
    "readwrite": ["s3:*"],
}


def scoped_key(
    endpoint: str, admin: tuple[str, str], *, user: str, bucket: str, permission: str,
    cafile: str | None = None,
) -> tuple[str, str]:  # fmt: skip
    """A key pair like a Spaces key with one grant (`read` or `readwrite`) on `bucket`."""
    import boto3

    iam = boto3.client(
        "iam", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=admin[0],
        aws_secret_access_key=admin[1], verify=cafile or True,
    )  # fmt: skip
    iam.create_user(UserName=user)
    resources = [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]
    policy = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": GRANTS[permission], "Resource": resources}
    ]}  # fmt: skip
    iam.put_user_policy(UserName=user, PolicyName="grant", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=user)["AccessKey"]
    return str(key["AccessKeyId"]), str(key["SecretAccessKey"])


@contextlib.contextmanager
def moto_s3() -> Iterator[S3Server]:
    """Serve S3 on a free loopback port, signatures enforced, for the block's duration."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        yield S3Server(endpoint, *enforce_signatures(endpoint))
    finally:
        server.stop()
