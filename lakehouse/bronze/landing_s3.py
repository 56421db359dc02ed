"""Landing on object storage: the CSVs below an ``s3a://bucket/prefix``, checked on the driver as local ones are.

Listing, hashing and the header are read here with boto3 (:mod:`lakehouse.adapters.objectstore`); the bytes a
batch ingests are read later by Spark's executors through S3A (:mod:`lakehouse.bronze.parse`), so no executor
needs the driver's disk. A key is a file: ``_source_file`` is the key relative to the prefix. S3 has no links,
special files or unreadable folders, so the refusals left are those of the bytes and the header. Both reads of an
object here (content, then header) ask for the ETag the listing showed, so they read the one version listed.
"""

from __future__ import annotations

import logging
from typing import BinaryIO

from lakehouse.adapters.objectstore import (
    ObjectUnreadableError,
    StoredObject,
    list_objects,
    open_object,
    s3_client,
    split_uri,
)
from lakehouse.bronze.landing import LandingFile, Refusal, UnreadableFileError, inspect
from lakehouse.errors import ConfigurationError
from lakehouse.settings import S3Settings

log = logging.getLogger(__name__)


def discover_objects(uri: str, s3: S3Settings | None) -> tuple[list[LandingFile], list[Refusal]]:
    """Every ``*.csv`` object below ``uri`` (``s3a://bucket/prefix``) that belongs to a known table, has an
    acceptable header and clean bytes, as :func:`lakehouse.bronze.landing.discover` finds them in a folder.

    Raises:
        ConfigurationError: no S3 credentials, or the bucket cannot be listed.
        ServiceUnavailableError: the endpoint does not answer.
    """
    if s3 is None:
        raise ConfigurationError(f"landing {uri} is on S3 but AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set")
    client = s3_client(s3)
    files: list[LandingFile] = []
    refused: list[Refusal] = []
    candidates = [obj for obj in list_objects(s3, uri) if obj.key.lower().endswith(".csv")]
    root = f"{prefix}/" if (prefix := split_uri(uri)[1]) else ""
    for count, obj in enumerate(candidates, start=1):
        source = obj.key.removeprefix(root)
        log.info("landing: checking object %d, %s", count, source, extra={"progress": True})

        def opener(obj: StoredObject = obj, source: str = source) -> BinaryIO:
            try:
                return open_object(s3, obj, client=client)
            except ObjectUnreadableError as exc:
                raise UnreadableFileError(source, str(exc)) from None

        checked = inspect(obj.uri, source, opener)
        if isinstance(checked, LandingFile):
            files.append(checked)
        else:
            refused.append(checked)
    return sorted(files, key=lambda f: f.source_file), refused
