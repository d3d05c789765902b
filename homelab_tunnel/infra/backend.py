"""Where Terraform keeps state: a local file, or a DigitalOcean Spaces bucket.

Spaces speaks the S3 API, so the state goes through Terraform's `s3` backend
(checked against Terraform 1.11's s3 backend documentation and DigitalOcean's
guide for Spaces as a backend). Credentials never appear here: Terraform
reads the Spaces key pair from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY.
"""

from __future__ import annotations

from cdktf import LocalBackend, S3Backend, S3BackendEndpointConfig, TerraformStack

from homelab_tunnel.config import LocalBackend as LocalBackendConfig
from homelab_tunnel.config import SpacesBackend
from homelab_tunnel.render.backup import spaces_endpoint

# Spaces is not AWS: the region only feeds request signing (DigitalOcean's
# guide uses us-east-1), and the bucket's real region is in the endpoint.
SPACES_SIGNING_REGION = "us-east-1"


def configure_backend(
    stack: TerraformStack, backend: LocalBackendConfig | SpacesBackend, *, local_path: str
) -> None:
    """Attach the configured backend; credentials always come from the environment."""
    if isinstance(backend, LocalBackendConfig):
        LocalBackend(stack, path=local_path)
        return
    s3 = S3Backend(
        stack,
        bucket=backend.bucket,
        key=backend.key,
        region=SPACES_SIGNING_REGION,
        endpoints=S3BackendEndpointConfig(s3=spaces_endpoint(backend.region)),
        # AWS-only calls Spaces does not implement (STS, IAM, EC2 metadata).
        skip_credentials_validation=True,
        skip_region_validation=True,
        skip_requesting_account_id=True,
        skip_metadata_api_check=True,
        # No checksum header on uploads: Spaces has not always accepted them.
        skip_s3_checksum=True,
        # No use_path_style: Terraform addresses <bucket>.<region>.digitaloceanspaces.com,
        # which Spaces serves with a wildcard certificate. That holds because bucket
        # names cannot contain dots (config.py refuses them).
    )
    # Lock with a <key>.tflock object written with If-None-Match (Terraform >= 1.10;
    # DynamoDB locking is deprecated and Spaces has none). This cdktf release does
    # not model the argument yet.
    s3.add_override("use_lockfile", True)
