"""The S3 side of the lake that Spark does not do: buckets exist before the first write, probes are deleted.

Uses boto3, an independent client, so what it sees is what any S3 tool sees.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from lakehouse.errors import ConfigurationError, ServiceUnavailableError
from lakehouse.settings import S3Settings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import ObjectIdentifierTypeDef


def s3_client(s3: S3Settings) -> S3Client:
    """A boto3 S3 client for ``s3`` with path-style addressing and quick failure on a dead endpoint."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=s3.endpoint_url,
        aws_access_key_id=s3.access_key_id,
        aws_secret_access_key=s3.secret_access_key.reveal(),
        region_name=s3.region,
        config=Config(
            s3={"addressing_style": "path"},
            connect_timeout=5,
            read_timeout=30,
            retries={"max_attempts": 2, "mode": "standard"},
        ),
    )


def bucket_of(uri: str) -> str:
    """``s3a://bronze/campaigns`` -> ``bronze``."""
    return urlsplit(uri).netloc


def ensure_bucket(s3: S3Settings, bucket: str, *, client: Any = None) -> bool:
    """Create ``bucket`` unless it exists. Returns True when it was created.

    Raises:
        ConfigurationError: the bucket is missing and the key may not create it (the pipeline's scoped key).
        ServiceUnavailableError: the endpoint does not answer, or refuses the bucket for another reason.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    client = client or s3_client(s3)
    try:
        client.head_bucket(Bucket=bucket)
        return False
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket", "NotFound"):
            raise ServiceUnavailableError("S3", s3.endpoint, f"cannot access bucket {bucket!r}: {exc}") from None
    except BotoCoreError as exc:
        raise ServiceUnavailableError(
            "S3", s3.endpoint, str(exc), hint="is MinIO running? (docker compose up -d minio)"
        ) from None
    try:
        client.create_bucket(Bucket=bucket)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "AccessDenied":
            raise ServiceUnavailableError("S3", s3.endpoint, f"cannot create bucket {bucket!r}: {exc}") from None
        raise ConfigurationError(
            f"bucket {bucket!r} does not exist at {s3.endpoint} and the key {s3.access_key_id!r} may not create it "
            "(the pipeline's key is scoped to its buckets). Create it with the root key: docker compose's minio-init "
            "creates landing, bronze, silver and quarantine"
        ) from None
    return True


def delete_prefix(s3: S3Settings, uri: str) -> int:
    """Delete every object below ``uri`` (``s3a://bucket/folder``, as a folder); the number deleted."""
    parts = urlsplit(uri)
    prefix = parts.path.strip("/") + "/"
    client = s3_client(s3)
    deleted = 0
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=parts.netloc, Prefix=prefix):
        keys: list[ObjectIdentifierTypeDef] = [{"Key": obj["Key"]} for obj in page.get("Contents", [])]
        if keys:
            client.delete_objects(Bucket=parts.netloc, Delete={"Objects": keys})
            deleted += len(keys)
    return deleted
