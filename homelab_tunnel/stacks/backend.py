"""Where Terraform keeps state: a local file, or a DigitalOcean Spaces bucket."""

from __future__ import annotations

from cdktf import LocalBackend, S3Backend, S3BackendEndpointConfig, TerraformStack

from homelab_tunnel.config import LocalBackend as LocalBackendConfig
from homelab_tunnel.config import SpacesBackend

# Spaces speaks the S3 API but is not AWS: the region only feeds request
# signing, and the AWS-only preflight calls must be skipped.
SPACES_SIGNING_REGION = "us-east-1"


def spaces_endpoint(region: str) -> str:
    return f"https://{region}.digitaloceanspaces.com"


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
        skip_credentials_validation=True,
        skip_region_validation=True,
        skip_requesting_account_id=True,
        skip_metadata_api_check=True,
    )
    # Fields this cdktf release does not model yet (Terraform >= 1.10).
    s3.add_override("skip_s3_checksum", True)
    s3.add_override("use_lockfile", True)
