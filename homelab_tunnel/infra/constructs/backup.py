"""The backup bucket, and a Spaces key that can touch nothing else."""

from __future__ import annotations

from cdktf_cdktf_provider_digitalocean.spaces_bucket import (
    SpacesBucket,
    SpacesBucketLifecycleRule,
    SpacesBucketLifecycleRuleExpiration,
    SpacesBucketLifecycleRuleNoncurrentVersionExpiration,
    SpacesBucketVersioning,
)
from cdktf_cdktf_provider_digitalocean.spaces_key import SpacesKey, SpacesKeyGrant
from constructs import Construct

# readwrite: the edge writes its backups and reads them back to restore; it can
# neither list nor touch the account's other buckets (the Terraform state's).
EDGE_PERMISSION = "readwrite"


class EdgeBackup(Construct):
    """A private, versioned bucket whose old versions expire after `retention_days`.

    Versioning keeps a deleted or overwritten backup for the retention window
    even if the edge (or its key) misbehaves. Creating the bucket needs the
    operator's own Spaces key in the provider (SPACES_ACCESS_KEY_ID and
    SPACES_SECRET_ACCESS_KEY); the edge only ever gets the scoped key.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        name: str,
        bucket: str,
        region: str,
        retention_days: int,
    ) -> None:
        super().__init__(scope, id_)
        self.bucket = SpacesBucket(
            self,
            "bucket",
            name=bucket,
            region=region,
            acl="private",
            versioning=SpacesBucketVersioning(enabled=True),
            lifecycle_rule=[
                SpacesBucketLifecycleRule(
                    id="expire-old-versions",
                    enabled=True,
                    noncurrent_version_expiration=SpacesBucketLifecycleRuleNoncurrentVersionExpiration(
                        days=retention_days
                    ),
                    abort_incomplete_multipart_upload_days=1,
                ),
                SpacesBucketLifecycleRule(
                    id="drop-delete-markers",
                    enabled=True,
                    expiration=SpacesBucketLifecycleRuleExpiration(
                        expired_object_delete_marker=True
                    ),
                ),
            ],
        )
        self.bucket.override_logical_id("backup")
        self.key = SpacesKey(
            self,
            "key",
            name=f"{name}-backup",
            grant=[SpacesKeyGrant(bucket=self.bucket.name, permission=EDGE_PERMISSION)],
        )
        self.key.override_logical_id("backup")
