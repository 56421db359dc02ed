"""Parsing landing files on the executors: strict RFC 4180 (:mod:`lakehouse.bronze.landing`) inside ``mapInArrow``,
one task per file, keeping every record and per-file counts (records, corrupt, blank lines)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse.bronze.landing import LandingFile, ParseStats, parse_records
from lakehouse.bronze.transforms import STATS, parsed_schema
from lakehouse.contracts import SOURCE_COLUMNS

_ARROW_BATCH = 8192


def _parse_batches(table: str):  # type: ignore[no-untyped-def]  # returns a mapInArrow function
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
            for path, content in zip(
                batch.column("path").to_pylist(), batch.column("content").to_pylist(), strict=True
            ):
                name = path.rsplit("/", 1)[-1]
                stats = ParseStats()
                for values, corrupt in parse_records(content.decode("utf-8"), columns, file=name, stats=stats):
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
    """Parse ``files`` (all of one table) on the executors; one task per file. The result is cached."""
    raw = spark.read.format("binaryFile").load([f.path.resolve().as_uri() for f in files])
    return raw.select("path", "content").mapInArrow(_parse_batches(table), parsed_schema(table)).cache()


def file_stats(parsed: DataFrame) -> dict[str, tuple[int, int, int]]:
    """``{file: (records, corrupt, blank lines)}`` from the stats rows of :func:`parse_files`."""
    rows = parsed.where(F.col("_records").isNotNull()).select("_source_file", *STATS).collect()
    return {r[0]: (int(r[1]), int(r[2]), int(r[3])) for r in rows}
