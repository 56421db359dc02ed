"""The pipeline's scoped MinIO key (the policy of :func:`lakehouse.services.minio.pipeline_policy`, as the fixtures
and docker compose's ``minio-init`` attach it): it reads and writes its own buckets and nothing else."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from botocore.exceptions import ClientError

from lakehouse.adapters.objectstore import ensure_bucket, s3_client
from lakehouse.errors import ConfigurationError
from lakehouse.settings import S3Settings

pytestmark = pytest.mark.integration


def _denied(call: Callable[[], object]) -> None:
    with pytest.raises(ClientError) as raised:
        call()
    assert raised.value.response["Error"]["Code"] == "AccessDenied", raised.value.response


def test_the_scoped_key_reads_writes_lists_and_deletes_in_its_bucket(s3_service: S3Settings, s3_bucket: str) -> None:
    client = s3_client(s3_service)

    client.put_object(Bucket=s3_bucket, Key="bronze/a.csv", Body=b"id\n1\n")
    client.head_bucket(Bucket=s3_bucket)
    listed = client.list_objects_v2(Bucket=s3_bucket, Prefix="bronze/")
    assert [obj["Key"] for obj in listed.get("Contents", [])] == ["bronze/a.csv"]
    assert client.get_object(Bucket=s3_bucket, Key="bronze/a.csv")["Body"].read() == b"id\n1\n"
    client.copy_object(Bucket=s3_bucket, Key="bronze/b.csv", CopySource={"Bucket": s3_bucket, "Key": "bronze/a.csv"})
    client.delete_objects(Bucket=s3_bucket, Delete={"Objects": [{"Key": "bronze/a.csv"}, {"Key": "bronze/b.csv"}]})
    assert client.list_objects_v2(Bucket=s3_bucket).get("KeyCount") == 0


def test_the_scoped_key_cannot_create_or_delete_a_bucket(s3_service: S3Settings, s3_bucket: str) -> None:
    """Bucket creation is bootstrap, even for a name the policy covers."""
    client = s3_client(s3_service)

    _denied(lambda: client.create_bucket(Bucket="lh-test-made-by-the-pipeline"))
    _denied(lambda: client.create_bucket(Bucket="anything-else"))
    _denied(lambda: client.delete_bucket(Bucket=s3_bucket))


def test_the_scoped_key_cannot_touch_another_bucket(
    s3_root: S3Settings, s3_service: S3Settings, make_bucket: Callable[[str], str]
) -> None:
    other = make_bucket("lh-other")
    s3_client(s3_root).put_object(Bucket=other, Key="secret.csv", Body=b"not yours")
    client = s3_client(s3_service)

    _denied(lambda: client.list_objects_v2(Bucket=other))
    _denied(lambda: client.get_object(Bucket=other, Key="secret.csv"))
    _denied(lambda: client.put_object(Bucket=other, Key="planted.csv", Body=b"x"))
    _denied(lambda: client.delete_object(Bucket=other, Key="secret.csv"))
    assert s3_client(s3_root).get_object(Bucket=other, Key="secret.csv")["Body"].read() == b"not yours"


def test_listing_buckets_with_the_scoped_key_shows_none_of_the_others(
    s3_service: S3Settings, s3_bucket: str, make_bucket: Callable[[str], str]
) -> None:
    """MinIO answers ``ListBuckets`` with the buckets the key may list, not with AccessDenied."""
    other = make_bucket("lh-other")

    names = {bucket["Name"] for bucket in s3_client(s3_service).list_buckets()["Buckets"]}
    assert s3_bucket in names
    assert other not in names
    assert all(name.startswith("lh-test-") for name in names)


def test_a_missing_bucket_the_scoped_key_may_not_create_is_a_configuration_error(s3_service: S3Settings) -> None:
    """The pipeline creates missing layer buckets only with a key allowed to; the scoped key gets the fix instead."""
    with pytest.raises(ConfigurationError, match=r"bucket 'lh-test-never-made' does not exist .* minio-init") as raised:
        ensure_bucket(s3_service, "lh-test-never-made")
    assert s3_service.secret_access_key.reveal() not in str(raised.value)
