"""The S3 side that Spark does not do: buckets exist before the first write, probes are deleted, and landing
objects are listed and read on the driver (their checks before a batch is planned).

Uses boto3, an independent client, so what it sees is what any S3 tool sees.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO
from urllib.parse import urlsplit

from lakehouse.errors import ConfigurationError, LakehouseError, ServiceUnavailableError
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


@dataclass(frozen=True)
class StoredObject:
    """One object as a listing shows it: its key, size and ETag (which changes whenever its bytes do)."""

    bucket: str
    key: str
    size: int
    etag: str

    @property
    def uri(self) -> str:
        return f"s3a://{self.bucket}/{self.key}"


class ObjectUnreadableError(LakehouseError):
    """An object listed a moment ago cannot be read as listed: gone, rewritten (another ETag) or forbidden."""


def split_uri(uri: str) -> tuple[str, str]:
    """``s3a://bucket/some/prefix`` -> ``("bucket", "some/prefix")`` (no leading or trailing ``/``)."""
    parts = urlsplit(uri)
    return parts.netloc, parts.path.strip("/")


def list_objects(s3: S3Settings, uri: str) -> Iterator[StoredObject]:
    """Every object below ``uri`` taken as a folder (``s3a://bucket/prefix`` lists ``prefix/…``), in key order.

    Raises:
        ConfigurationError: the bucket does not exist, or the key may not list it.
        ServiceUnavailableError: the endpoint does not answer.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, prefix = split_uri(uri)
    client = s3_client(s3)
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{prefix}/" if prefix else "")
    try:
        for page in pages:
            for obj in page.get("Contents", []):
                yield StoredObject(bucket, obj["Key"], obj["Size"], obj["ETag"])
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code")
        if code in ("NoSuchBucket", "AccessDenied"):
            raise ConfigurationError(
                f"cannot list {uri} at {s3.endpoint} with the key {s3.access_key_id!r}: {code}"
            ) from None
        raise ServiceUnavailableError("S3", s3.endpoint, f"cannot list {uri}: {exc}") from None
    except BotoCoreError as exc:
        raise ServiceUnavailableError("S3", s3.endpoint, str(exc)) from None


def open_object(s3: S3Settings, obj: StoredObject, *, client: Any = None) -> BinaryIO:
    """A streaming reader of ``obj``'s bytes, exactly the version listed: the GET carries ``If-Match: <ETag>``,
    so a rewritten object is refused rather than read in place of the one listed.

    Raises:
        ObjectUnreadableError: the object is gone, was rewritten since it was listed, or may not be read.
        ServiceUnavailableError: the endpoint does not answer.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        response = (client or s3_client(s3)).get_object(Bucket=obj.bucket, Key=obj.key, IfMatch=obj.etag)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code")
        reason = {"PreconditionFailed": "changed while it was being checked; it is checked again by the next run"}
        raise ObjectUnreadableError(reason.get(str(code), f"cannot be read ({code})")) from None
    except BotoCoreError as exc:
        raise ServiceUnavailableError("S3", s3.endpoint, str(exc)) from None
    return io.BufferedReader(_Body(response["Body"]), buffer_size=1 << 20)


class _Body(io.RawIOBase):
    """A botocore streaming body as a raw binary file (``readinto``), so ``io`` buffers and decodes it."""

    def __init__(self, body: Any) -> None:
        self._body = body

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._body.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._body.close()
        super().close()
