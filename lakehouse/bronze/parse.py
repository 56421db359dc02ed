"""Parsing landing files on the executors: strict RFC 4180 (:mod:`lakehouse.bronze.landing`) inside ``mapInArrow``,
one task per file, keeping every record and per-file counts (records, corrupt, blank lines).

Executors open the files themselves, by their exact local path: a Hadoop path would percent-decode nothing
and treat ``[``, ``*``, ``?`` and ``{`` as glob characters, so names such as ``campaigns (1).csv`` or
``campaigns[1].csv`` would not be found. As with any ``file://`` input, every executor must see the landing
directory at the same path (local mode, or a shared mount).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse.bronze.landing import LandingFile, ParseStats, UnreadableFileError, open_regular, parse_records
from lakehouse.bronze.transforms import STATS, parsed_schema
from lakehouse.contracts import SOURCE_COLUMNS

_ARROW_BATCH = 8192
_Source = tuple[str, str, str]  # (source file, absolute path, planned SHA-256)


def read_planned(path: Path, *, file: str, content_hash: str) -> str:
    """The text of a landing file planned into a batch.

    Raises:
        UnreadableFileError: the file is gone, no longer a regular file, or its bytes are not the planned ones.
    """
    with open_regular(path, file=file) as f:
        content = f.read()
    if hashlib.sha256(content).hexdigest() != content_hash:
        raise UnreadableFileError(
            file,
            "changed since its batch was planned; put the planned content back, or abandon the batch "
            "(lakehouse.bronze.ingest_log.abandon_batch) so that its files are planned again",
        )
    return content.decode("utf-8")


def _parse_batches(table: str, sources: list[_Source]):  # type: ignore[no-untyped-def]  # a mapInArrow function
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
            for index in batch.column("id").to_pylist():
                name, path, content_hash = sources[index]
                text = read_planned(Path(path), file=name, content_hash=content_hash)
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


def parse_files(spark: SparkSession, table: str, files: list[LandingFile]) -> DataFrame:
    """Parse ``files`` (all of one table) on the executors; one task per file. The result is cached.

    ``_source_file`` is each file's path relative to the landing directory. A task fails (and with it the
    batch) when a file changed after it was planned.
    """
    sources = [(f.source_file, os.path.abspath(f.path), f.content_hash) for f in files]
    ids = spark.range(len(sources), numPartitions=max(len(sources), 1))  # row i names file i: one file per task
    return ids.mapInArrow(_parse_batches(table, sources), parsed_schema(table)).cache()


def file_stats(parsed: DataFrame) -> dict[str, tuple[int, int, int]]:
    """``{source file: (records, corrupt, blank lines)}`` from the stats rows of :func:`parse_files`."""
    rows = parsed.where(F.col("_records").isNotNull()).select("_source_file", *STATS).collect()
    return {r[0]: (int(r[1]), int(r[2]), int(r[3])) for r in rows}
