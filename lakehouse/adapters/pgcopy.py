"""Streaming rows from the executors into PostgreSQL with binary COPY.

Spark hands each Python worker its partition as Arrow batches of the contract's columns
(:func:`with_copy_columns`); :class:`CopyStream` encodes every batch with :mod:`lakehouse.adapters.pgbinary`
(vectorised, exact) and hands the result to ``cursor.copy_expert`` as zero-copy slices, batch by batch:
no Python object per row or value, no text round trip (no escaping, no time zone, no decimal formatting).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from lakehouse.adapters.pgbinary import HEADER, TRAILER, encode_rows
from lakehouse.contracts import Column, Table


def with_copy_columns(df: DataFrame, table: Table) -> DataFrame:
    """Rows of ``df`` (any column order, extra columns ignored) -> the contract's columns, in order, typed.

    Output grain: one row per input row; the values are unchanged (NULL stays NULL).
    """
    return df.select(*(F.col(f"`{c.name}`").cast(c.spark_type).alias(c.name) for c in table.columns))


class CopyStream:
    """A file-like ``read(size)`` over Arrow batches, for ``cursor.copy_expert``: one binary COPY stream.

    Each batch is encoded as a whole and its tuples, contiguous in the encoded array's data buffer, are handed to
    COPY as one zero-copy slice.
    """

    def __init__(self, batches: Iterable[pa.RecordBatch], columns: tuple[Column, ...]) -> None:
        self._batches = iter(batches)
        self._columns = columns
        self._pending = memoryview(HEADER)
        self._ended = False
        self.rows = 0

    def _next_chunk(self) -> memoryview | None:
        for batch in self._batches:
            if batch.num_rows == 0:
                continue
            self.rows += batch.num_rows
            tuples = encode_rows(batch, self._columns)
            _, offsets, data = tuples.buffers()
            (start,) = struct.unpack_from("<q", offsets, 8 * tuples.offset)
            (end,) = struct.unpack_from("<q", offsets, 8 * (tuples.offset + len(tuples)))
            return memoryview(data)[start:end]
        if self._ended:
            return None
        self._ended = True
        return memoryview(TRAILER)

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

    def unread(self) -> Iterator[pa.RecordBatch]:
        """The batches COPY did not read (all of them, when the rows were not copied)."""
        return self._batches

    def readline(self, size: int = -1) -> bytes:  # psycopg2 probes for it; COPY uses read()
        return self.read(size)


STAGE_RESULT_SCHEMA = "partition int, rows long"


@dataclass(frozen=True)
class StageStatements:
    """The executor's statements for one staged table (composed on the driver, which knows the names).

    ``claim`` inserts ``(partition, NULL)`` into the claims table unless the partition is there (``%s``: the
    partition id); ``copy`` is a ``copy ... from stdin with (format binary)`` into the rows table; ``record`` sets
    the claim's rows (``%s``: rows, partition); ``claimed`` reads them back (``%s``: partition).
    """

    claim: str
    copy: str
    record: str
    claimed: str


def stage_partition(
    connect_kwargs: dict[str, Any],
    statements: StageStatements,
    columns: tuple[Column, ...],
    after_commit: Callable[[int, int], None] | None = None,
) -> Callable[[Iterable[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """The executor side of a load (for ``mapInArrow``): each Spark partition COPYs its rows, ``columns``, into
    the target's staging table, exactly once whatever the attempts.

    In one transaction a partition claims its id in the claims table, COPYs, and records its row count. A
    retried (or speculative) attempt finds the claim: it waits while an earlier attempt's transaction is open
    (the claim's key is unique), then either the earlier attempt committed, and this one reports that attempt's
    rows and copies nothing, or it rolled back, and this one claims and copies. So retries never duplicate rows.
    Yields one batch ``(partition, rows)`` (:data:`STAGE_RESULT_SCHEMA`).
    """

    def run(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import psycopg2
        from pyspark import TaskContext

        context = TaskContext.get()
        partition = context.partitionId() if context else 0
        attempt = context.attemptNumber() if context else 0
        reader = CopyStream(batches, columns)
        conn = psycopg2.connect(**connect_kwargs)
        try:
            with conn, conn.cursor() as cur:
                cur.execute(statements.claim, (partition,))
                if cur.rowcount == 1:
                    cur.copy_expert(statements.copy, reader, size=1 << 22)
                    rows = reader.rows
                    cur.execute(statements.record, (rows, partition))
                else:  # an earlier attempt of this partition committed its rows
                    cur.execute(statements.claimed, (partition,))
                    rows = int(cur.fetchone()[0])
        finally:
            conn.close()
        for _ in reader.unread():  # read to its end (so Spark can reuse the worker), holding no connection
            pass
        if after_commit is not None:
            after_commit(partition, attempt)
        yield pa.RecordBatch.from_pydict(
            {"partition": [partition], "rows": [rows]},
            schema=pa.schema([("partition", pa.int32()), ("rows", pa.int64())]),
        )

    return run
