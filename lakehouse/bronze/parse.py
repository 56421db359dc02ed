"""Parsing landing files on the executors: strict RFC 4180 (:mod:`lakehouse.bronze.landing`) inside ``mapInArrow``,
keeping every record and per-file counts (records, corrupt, blank lines).

Local files: executors open them themselves, by their exact local path, one task per file: a Hadoop path would
percent-decode nothing and treat ``[``, ``*``, ``?`` and ``{`` as glob characters, so names such as
``campaigns (1).csv`` or ``campaigns[1].csv`` would not be found. As with any ``file://`` input, every executor
must see the landing directory at the same path (local mode, or a shared mount).

Objects (``s3a://``): Spark's ``binaryFile`` source reads their bytes through S3A on whichever executor runs the
task, with globbing off (so a key's ``[`` or ``*`` is itself), and the Python function parses them.

Either way the bytes parsed are hashed again and compared with the SHA-256 planned into the batch: a file
rewritten between its check and its ingestion fails the task (and the batch) instead of loading other rows
under the planned hash. On S3 this is the re-hash of the very bytes parsed, not an ETag comparison: an ETag is
not a content hash for multipart uploads and differs between stores for the same bytes, and a check made before
the read could not see a rewrite that lands between that check and the read.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Iterator
from functools import reduce
from pathlib import Path

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse.bronze.landing import LandingFile, ParseStats, UnreadableFileError, open_regular, parse_records
from lakehouse.bronze.transforms import STATS, parsed_schema
from lakehouse.contracts import SOURCE_COLUMNS

_ARROW_BATCH = 8192
_Source = tuple[str, str, str]  # (source file, absolute path or s3a:// URI, planned SHA-256)


def read_planned(path: Path, *, file: str, content_hash: str) -> str:
    """The text of a landing file planned into a batch.

    Raises:
        UnreadableFileError: the file is gone, no longer a regular file, or its bytes are not the planned ones.
    """
    with open_regular(path, file=file) as f:
        return planned_text(f.read(), file=file, content_hash=content_hash)


def planned_text(content: bytes, *, file: str, content_hash: str) -> str:
    """``content`` as text if its SHA-256 is the one planned for ``file``.

    Raises:
        UnreadableFileError: the bytes are not the planned ones.
    """
    if hashlib.sha256(content).hexdigest() != content_hash:
        raise UnreadableFileError(
            file,
            "changed since its batch was planned; put the planned content back, or abandon the batch "
            "(lakehouse.bronze.ingest_log.abandon_batch) so that its files are planned again",
        )
    return content.decode("utf-8")


def _parse_batches(table: str, read: Callable[[pa.RecordBatch], Iterator[tuple[str, str]]]):  # type: ignore[no-untyped-def]  # a mapInArrow function
    """The ``mapInArrow`` function parsing the files ``read`` yields, as ``(source file, text)``, per input batch."""
    columns = SOURCE_COLUMNS[table]
    names = [*columns, "_corrupt_record", "_source_file", *STATS]
    schema = pa.schema(
        [(n, pa.string()) for n in (*columns, "_corrupt_record", "_source_file")] + [(s, pa.int64()) for s in STATS]
    )

    def flush(rows: list[tuple[object, ...]]) -> pa.RecordBatch:
        return pa.RecordBatch.from_arrays([pa.array(col) for col in zip(*rows, strict=True)], schema=schema)

    def run(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        rows: list[tuple[object, ...]] = []
        for batch in batches:
            for name, text in read(batch):
                stats = ParseStats()
                for values, corrupt in parse_records(text, columns, file=name, stats=stats):
                    rows.append((*values, corrupt, name, None, None, None))
                    if len(rows) >= _ARROW_BATCH:
                        yield flush(rows)
                        rows = []
                rows.append((*([None] * (len(columns) + 1)), name, stats.records, stats.corrupt, stats.blank_lines))
        if rows:
            yield flush(rows)

    assert len(names) == len(schema)
    return run


def _local_files(sources: list[_Source]) -> Callable[[pa.RecordBatch], Iterator[tuple[str, str]]]:
    """Read by an executor from its own disk: each row of the batch is the index of a file in ``sources``."""

    def read(batch: pa.RecordBatch) -> Iterator[tuple[str, str]]:
        for index in batch.column("id").to_pylist():
            name, path, content_hash = sources[index]
            yield name, read_planned(Path(path), file=name, content_hash=content_hash)

    return read


def _object_files(sources: list[_Source]) -> Callable[[pa.RecordBatch], Iterator[tuple[str, str]]]:
    """Read by Spark through S3A (``binaryFile``: ``path``, ``content``); ``path`` is the URI as given, verbatim."""
    by_uri = {uri: (name, content_hash) for name, uri, content_hash in sources}

    def read(batch: pa.RecordBatch) -> Iterator[tuple[str, str]]:
        for path, content in zip(batch.column("path").to_pylist(), batch.column("content").to_pylist(), strict=True):
            name, content_hash = by_uri[path]
            yield name, planned_text(content, file=name, content_hash=content_hash)

    return read


def parse_files(spark: SparkSession, table: str, files: list[LandingFile]) -> DataFrame:
    """Parse ``files`` (all of one table) on the executors; one task per local file, objects as Spark packs them.
    The result is cached.

    ``_source_file`` is each file's path relative to the landing directory (or prefix). A task fails (and with it
    the batch) when a file changed after it was planned.
    """
    local = [(f.source_file, os.path.abspath(f.path), f.content_hash) for f in files if isinstance(f.path, Path)]
    objects = [(f.source_file, f.path, f.content_hash) for f in files if isinstance(f.path, str)]
    frames = []
    if local or not objects:
        ids = spark.range(len(local), numPartitions=max(len(local), 1))  # row i names file i: one file per task
        frames.append(ids.mapInArrow(_parse_batches(table, _local_files(local)), parsed_schema(table)))
    if objects:
        # Globbing off: a key's [ * ? { are itself. Recursive lookup: no partition inference from the keys'
        # folders, which otherwise returns a file once per file given from the same folder.
        read = spark.read.format("binaryFile").options(__globPaths__="false", recursiveFileLookup="true")
        contents = read.load([uri for _, uri, _ in objects]).select("path", "content")
        frames.append(contents.mapInArrow(_parse_batches(table, _object_files(objects)), parsed_schema(table)))
    return reduce(lambda one, other: one.unionByName(other), frames).cache()


def file_stats(parsed: DataFrame) -> dict[str, tuple[int, int, int]]:
    """``{source file: (records, corrupt, blank lines)}`` from the stats rows of :func:`parse_files`."""
    rows = parsed.where(F.col("_records").isNotNull()).select("_source_file", *STATS).collect()
    return {r[0]: (int(r[1]), int(r[2]), int(r[3])) for r in rows}
