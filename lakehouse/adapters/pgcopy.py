"""PostgreSQL COPY text format, produced in the JVM and streamed from the executors.

Each row becomes one line of COPY's text format (tab-separated, ``\\N`` for NULL, backslash escapes) built
with Spark SQL functions, so Python workers only move bytes: no per-value Python conversion, no datetime
round trip through the worker's local time zone, exact decimals.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pyarrow as pa
from pyspark.sql import Column as SparkColumn
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from lakehouse.contracts import Column, Table

NULL = "\\N"
PARTITION_PLACEHOLDER = "{partition}"
# COPY text format: backslash first, then the three characters that would end a field or a line.
_ESCAPES = (("\\\\", "\\\\\\\\"), ("\n", "\\\\n"), ("\r", "\\\\r"), ("\t", "\\\\t"))
_TIMESTAMP_FORMAT = "yyyy-MM-dd HH:mm:ss.SSSSSSxxx"  # explicit offset: exact in any server time zone


def _escape(value: SparkColumn) -> SparkColumn:
    for pattern, replacement in _ESCAPES:
        value = F.regexp_replace(value, pattern, replacement)
    return value


def _array_literal(value: SparkColumn) -> SparkColumn:
    """``array<string>`` -> ``{"a","b"}`` with quotes and backslashes escaped; NULL elements stay NULL."""

    def element(e: SparkColumn) -> SparkColumn:
        quoted = F.concat(F.lit('"'), F.regexp_replace(F.regexp_replace(e, r"\\", r"\\\\"), '"', '\\\\"'), F.lit('"'))
        return F.coalesce(quoted, F.lit("NULL"))

    literal = F.concat(F.lit("{"), F.concat_ws(",", F.transform(value, element)), F.lit("}"))
    return F.when(value.isNotNull(), literal)  # concat_ws turns a NULL array into "", which is not NULL


def copy_field(column: Column) -> SparkColumn:
    """One column as a COPY text field: exact text, or ``\\N`` for NULL."""
    value = F.col(f"`{column.name}`")
    if column.type == "timestamp":
        text = F.date_format(value, _TIMESTAMP_FORMAT)
    elif column.type == "array<string>":
        text = _escape(_array_literal(value))
    elif column.type == "string":
        text = _escape(value)
    else:  # numbers, dates, booleans: Spark's cast gives PostgreSQL-readable text without special characters
        text = value.cast("string")
    return F.coalesce(text, F.lit(NULL))


def with_copy_line(df: DataFrame, table: Table) -> DataFrame:
    """Rows of ``df`` (any column order, extra columns ignored) -> one string column ``line`` in COPY text format.

    Output grain: one row per input row; each line ends with a newline, so a batch of lines concatenated is a
    COPY stream. NULL in any column becomes ``\\N``; empty strings stay empty.
    """
    fields = F.concat_ws("\t", *(copy_field(c) for c in table.columns))
    return df.select(F.concat(fields, F.lit("\n")).alias("line"))


class ArrowLineReader:
    """A file-like ``read(size)`` over Arrow batches of ``line`` strings, for ``cursor.copy_expert``.

    The lines of a batch are contiguous in the string column's data buffer, so a batch is handed to COPY as one
    zero-copy slice: Python never touches a row.
    """

    def __init__(self, batches: Iterable[pa.RecordBatch]) -> None:
        self._batches = iter(batches)
        self._pending = memoryview(b"")
        self.rows = 0

    def _next_chunk(self) -> memoryview | None:
        for batch in self._batches:
            if batch.num_rows == 0:
                continue
            self.rows += batch.num_rows
            lines = batch.column(0)
            _, offsets, data = lines.buffers()
            fmt, width = ("<q", 8) if pa.types.is_large_string(lines.type) else ("<i", 4)
            (start,) = struct.unpack_from(fmt, offsets, width * lines.offset)
            (end,) = struct.unpack_from(fmt, offsets, width * (lines.offset + len(lines)))
            return memoryview(data)[start:end]
        return None

    def read(self, size: int = -1) -> bytes:
        if not self._pending:
            chunk = self._next_chunk()
            if chunk is None:
                return b""
            self._pending = chunk
        if size < 0 or size >= len(self._pending):
            out, self._pending = self._pending, memoryview(b"")
        else:
            out, self._pending = self._pending[:size], self._pending[size:]
        return out.tobytes()

    def readline(self, size: int = -1) -> bytes:  # psycopg2 probes for it; COPY uses read()
        return self.read(size)


STAGE_RESULT_SCHEMA = "partition int, rows long"


def stage_partition(
    connect_kwargs: dict[str, Any],
    create_stage_sql: str,
    copy_sql: str,
    after_commit: Callable[[int, int], None] | None = None,
) -> Callable[[Iterable[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """The executor side of a load (for ``mapInArrow``): each Spark partition replaces its own staging table
    in one transaction.

    ``create_stage_sql`` and ``copy_sql`` contain ``{partition}``, filled with the partition id, so a retried
    task drops what an earlier attempt of the same partition committed: retries never duplicate.
    Yields one batch ``(partition, rows)`` (:data:`STAGE_RESULT_SCHEMA`).
    """

    def run(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import psycopg2
        from pyspark import TaskContext

        context = TaskContext.get()
        partition = context.partitionId() if context else 0
        attempt = context.attemptNumber() if context else 0
        reader = ArrowLineReader(batches)
        conn = psycopg2.connect(**connect_kwargs)
        try:
            with conn, conn.cursor() as cur:
                cur.execute(create_stage_sql.replace(PARTITION_PLACEHOLDER, str(partition)))
                cur.copy_expert(copy_sql.replace(PARTITION_PLACEHOLDER, str(partition)), reader, size=1 << 22)
        finally:
            conn.close()
        if after_commit is not None:
            after_commit(partition, attempt)
        yield pa.RecordBatch.from_pydict(
            {"partition": [partition], "rows": [reader.rows]},
            schema=pa.schema([("partition", pa.int32()), ("rows", pa.int64())]),
        )

    return run
