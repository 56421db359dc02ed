"""Parsing landing files on the executors: strict RFC 4180 (:mod:`lakehouse.bronze.landing`) inside ``mapInArrow``,
keeping every record and per-file counts (records, corrupt, blank lines).

Local files: executors open them themselves, by their exact local path, one task per range (a file longer than
the split size is cut into ranges when it is discovered, see :class:`lakehouse.bronze.landing.LandingFile`), and
read the range as a stream: no task holds more than a batch of rows, whatever the file's size. A Hadoop path would
percent-decode nothing and treat ``[``, ``*``, ``?`` and ``{`` as glob characters, so names such as
``campaigns (1).csv`` or ``campaigns[1].csv`` would not be found. As with any ``file://`` input, every executor
must see the landing directory at the same path (local mode, or a shared mount).

Objects (``s3a://``): Spark's ``binaryFile`` source reads their bytes through S3A on whichever executor runs the
task, with globbing off (so a key's ``[`` or ``*`` is itself), and the Python function parses them.

A cut is a guess made from quote parity; the parse proves it. A range starts where the previous one ends, and
the file's first range starts at a record; if every range but the last ends outside any record (its parser was
not inside a quoted field when the bytes ran out), each next range starts at a record too, and the ranges'
records and counts are exactly those of one parse of the whole file. Where a range ends inside a record (a stray
``"`` in an unquoted field upsets the parity), the whole file is parsed again in one task, still as a stream.

Either way the bytes parsed are hashed again and compared with the SHA-256 planned into the batch (per range): a file
rewritten between its check and its ingestion fails the task (and the batch) instead of loading other rows
under the planned hash. On S3 this is the re-hash of the very bytes parsed, not an ETag comparison: an ETag is
not a content hash for multipart uploads and differs between stores for the same bytes, and a check made before
the read could not see a rewrite that lands between that check and the read.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from functools import reduce
from pathlib import Path
from typing import BinaryIO, NamedTuple

import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse.bronze.landing import LandingFile, ParseStats, Record, UnreadableFileError, open_regular, parse_lines
from lakehouse.bronze.transforms import STATS, parsed_schema
from lakehouse.contracts import SOURCE_COLUMNS

log = logging.getLogger(__name__)
_ARROW_BATCH = 32768
_READ_BUFFER = 1 << 20
_CHANGED = (
    "changed since its batch was planned; put the planned content back, or abandon the batch "
    "(lakehouse.bronze.ingest_log.abandon_batch) so that its files are planned again"
)


@dataclass(frozen=True)
class _Range:
    """A piece of a local file to parse: bytes ``start`` to ``end`` (None: to the end of the file)."""

    file: str  # the source file's name, relative to the landing directory
    path: str  # its absolute local path
    start: int
    end: int | None
    sha256: str  # of the bytes from start to end
    positions: tuple[int, ...] | None  # the header's columns, for a range after the first


@dataclass(frozen=True)
class ParsedFiles:
    """The parsed records and per-file stats rows (``frame``, cached), and each file's
    ``(records, corrupt, blank lines)``."""

    frame: DataFrame
    stats: dict[str, tuple[int, int, int]]


class _PlannedBytes(io.RawIOBase):
    """Bytes ``start`` to ``end`` of ``f`` (None: to its end), hashed as they are read; at the end they must have
    the planned SHA-256."""

    def __init__(self, f: BinaryIO, *, file: str, start: int, end: int | None, sha256: str) -> None:
        super().__init__()
        self._f, self._file, self._left, self._sha256 = f, file, end - start if end is not None else None, sha256
        self._hash = hashlib.sha256()
        if start:
            f.seek(start)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]  # the RawIOBase protocol
        view = memoryview(buffer).cast("B")
        if self._left is not None:
            view = view[: self._left]
        data = self._f.read(len(view)) if len(view) else b""
        n = len(data)
        if n:
            view[:n] = data
            self._hash.update(view[:n])
            if self._left is not None:
                self._left -= n
            return n
        if self._hash.hexdigest() != self._sha256 or self._left:
            raise UnreadableFileError(self._file, _CHANGED)
        return 0


def planned_lines(f: BinaryIO, *, file: str, start: int = 0, end: int | None = None, sha256: str) -> Iterator[str]:
    """The lines (endings kept) of bytes ``start`` to ``end`` of ``f``, read as a stream.

    Raises:
        UnreadableFileError: at the end, if the bytes read are not the planned ones (or, earlier, not UTF-8).
    """
    raw = _PlannedBytes(f, file=file, start=start, end=end, sha256=sha256)
    text = io.TextIOWrapper(io.BufferedReader(raw, _READ_BUFFER), encoding="utf-8", newline="")
    try:
        yield from text
    except UnicodeDecodeError:
        raise UnreadableFileError(file, _CHANGED) from None


class _Piece(NamedTuple):
    """What one task parses: a file's name, its lines (opened on entry), the header's columns for a range after
    the file's first, and whether the lines run to the end of the file."""

    file: str
    lines: AbstractContextManager[Iterable[str]]
    positions: tuple[int, ...] | None
    to_end: bool


_Read = Callable[[pa.RecordBatch], Iterator[_Piece]]


def _parse_batches(table: str, read: _Read):  # type: ignore[no-untyped-def]  # a mapInArrow function
    """The ``mapInArrow`` function parsing the pieces ``read`` yields per input batch.

    A good record on one line without a quote (most records) stays one string until Arrow splits a batch of them
    at their commas (see :func:`lakehouse.bronze.landing.parse_lines`); only the others become Python tuples.
    """
    columns = SOURCE_COLUMNS[table]
    text = pa.string()
    names = (*columns, "_corrupt_record", "_source_file")
    schema = pa.schema([(n, text) for n in names] + [(s, pa.int64()) for s in STATS])

    def records(name: str, lines: list[str], others: list[Record], positions: list[int]) -> pa.RecordBatch:
        fields = pc.split_pattern(pa.array(lines, text), pattern=",")
        arrays = [
            pa.concat_arrays([pc.list_element(fields, positions[j]), pa.array([r[0][j] for r in others], text)])
            for j in range(len(columns))
        ]
        arrays.append(pa.concat_arrays([pa.nulls(len(lines), text), pa.array([r[1] for r in others], text)]))
        rows = len(lines) + len(others)
        arrays.append(pa.array([name] * rows, text))
        arrays += [pa.nulls(rows, pa.int64())] * len(STATS)
        return pa.RecordBatch.from_arrays(arrays, schema=schema)

    def totals(name: str, stats: ParseStats, to_end: bool) -> pa.RecordBatch:
        misaligned = int(stats.unfinished and not to_end)
        counts = (stats.records, stats.corrupt, stats.blank_lines, misaligned)
        arrays = [pa.nulls(1, text)] * (len(columns) + 1) + [pa.array([name], text)]
        return pa.RecordBatch.from_arrays([*arrays, *(pa.array([n], pa.int64()) for n in counts)], schema=schema)

    def run(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            for piece in read(batch):
                stats = ParseStats()
                lines: list[str] = []
                others: list[Record] = []
                with piece.lines as text_lines:
                    parsed = parse_lines(text_lines, columns, file=piece.file, stats=stats, positions=piece.positions)
                    for record in parsed:
                        if isinstance(record, str):
                            lines.append(record)
                        else:
                            others.append(record)
                        if len(lines) + len(others) >= _ARROW_BATCH:
                            yield records(piece.file, lines, others, stats.positions)
                            lines, others = [], []
                if lines or others:
                    yield records(piece.file, lines, others, stats.positions)
                yield totals(piece.file, stats, piece.to_end)

    return run


def _local_ranges(ranges: list[_Range]) -> _Read:
    """Read by an executor from its own disk: each row of the batch is the index of a range in ``ranges``."""

    @contextmanager
    def lines(r: _Range) -> Iterator[Iterable[str]]:
        with open_regular(Path(r.path), file=r.file) as f:
            yield planned_lines(f, file=r.file, start=r.start, end=r.end, sha256=r.sha256)

    def read(batch: pa.RecordBatch) -> Iterator[_Piece]:
        for index in batch.column("id").to_pylist():
            r = ranges[index]
            yield _Piece(r.file, lines(r), r.positions, r.end is None)

    return read


def _object_files(sources: list[tuple[str, str, str]]) -> _Read:
    """Read by Spark through S3A (``binaryFile``: ``path``, ``content``); ``path`` is the URI as given, verbatim."""
    by_uri = {uri: (name, content_hash) for name, uri, content_hash in sources}

    @contextmanager
    def lines(name: str, content: bytes, content_hash: str) -> Iterator[Iterable[str]]:
        yield planned_lines(io.BytesIO(content), file=name, sha256=content_hash)

    def read(batch: pa.RecordBatch) -> Iterator[_Piece]:
        for path, content in zip(batch.column("path").to_pylist(), batch.column("content").to_pylist(), strict=True):
            name, content_hash = by_uri[path]
            yield _Piece(name, lines(name, content, content_hash), None, True)

    return read


def _ranges(files: list[LandingFile], *, whole: bool = False) -> list[_Range]:
    """The ranges of local ``files`` (one per file if ``whole``)."""
    return [
        _Range(f.source_file, os.path.abspath(f.path), start, end, digest, f.positions if start else None)
        for f in files
        for start, end, digest in ([(0, None, f.content_hash)] if whole else f.parse_ranges())
    ]


def _parse_local(spark: SparkSession, table: str, ranges: list[_Range]) -> DataFrame:
    ids = spark.range(len(ranges), numPartitions=max(len(ranges), 1))  # row i names range i: one range per task
    return ids.mapInArrow(_parse_batches(table, _local_ranges(ranges)), parsed_schema(table))


def _stats(frame: DataFrame, files: list[str] | None = None) -> dict[str, tuple[int, int, int, int]]:
    """Per file, the sums of its ranges' stats rows (records, corrupt, blank lines, ranges ending mid-record)."""
    rows = frame.where(F.col("_records").isNotNull())
    if files is not None:
        rows = rows.where(F.col("_source_file").isin(files))
    totals: dict[str, tuple[int, int, int, int]] = {}
    for row in rows.select("_source_file", *STATS).collect():
        before = totals.get(row[0], (0, 0, 0, 0))
        totals[row[0]] = tuple(a + int(b) for a, b in zip(before, row[1:], strict=True))  # type: ignore[assignment]
    return totals


def parse_files(spark: SparkSession, table: str, files: list[LandingFile]) -> ParsedFiles:
    """Parse ``files`` (all of one table) on the executors: one task per range of a local file, objects as Spark
    packs them. The frame is cached and computed (its stats are read here).

    ``_source_file`` is each file's path relative to the landing directory (or prefix). A task fails (and with it
    the batch) when a file changed after it was planned.
    """
    local = [f for f in files if isinstance(f.path, Path)]
    objects = [(f.source_file, f.path, f.content_hash) for f in files if isinstance(f.path, str)]
    frames = []
    if local or not objects:
        frames.append(_parse_local(spark, table, _ranges(local)))
    if objects:
        # Globbing off: a key's [ * ? { are itself. Recursive lookup: no partition inference from the keys'
        # folders, which otherwise returns a file once per file given from the same folder.
        read = spark.read.format("binaryFile").options(__globPaths__="false", recursiveFileLookup="true")
        contents = read.load([uri for _, uri, _ in objects]).select("path", "content")
        frames.append(contents.mapInArrow(_parse_batches(table, _object_files(objects)), parsed_schema(table)))
    parsed = reduce(lambda one, other: one.unionByName(other), frames).cache()
    stats = _stats(parsed)
    redo = [f for f in local if stats[f.source_file][3]]
    if redo:
        names = [f.source_file for f in redo]
        log.warning(
            "bronze/%s: %s: a record runs across a cut between parse ranges (a stray quote outside a quoted field "
            "upsets the quote parity the cuts are guessed from); parsing each such file again in one task",
            table,
            ", ".join(names),
        )
        kept = parsed.where(~F.col("_source_file").isin(names))
        again = kept.unionByName(_parse_local(spark, table, _ranges(redo, whole=True))).cache()
        stats |= _stats(again, names)
        parsed.unpersist()
        parsed = again
    return ParsedFiles(parsed, {name: (r, c, b) for name, (r, c, b, _) in stats.items()})
