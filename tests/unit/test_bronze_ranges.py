"""A large landing file parsed in ranges: where the cuts fall, that every range reads only its planned bytes, and
that the ranges' records and counts are exactly those of one parse of the whole file, or the file is parsed whole.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from lakehouse.bronze.landing import LandingFile, ParseStats, UnreadableFileError, check_stream, discover, parse_records
from lakehouse.bronze.parse import _local_ranges, _parse_batches, _Range, parse_files, planned_lines
from lakehouse.bronze.transforms import records_only
from lakehouse.contracts import SOURCE_COLUMNS
from lakehouse.sample import generate

ADVERTISERS = SOURCE_COLUMNS["advertisers"]
Parse = tuple[list[tuple[tuple[str | None, ...], str | None]], tuple[int, int, int]]


def _reference_cuts(data: bytes, every: int) -> list[int]:
    """The cuts by their definition: after a line feed, an even number of quotes before, at least ``every`` bytes
    after the previous cut, and not at the very end."""
    cuts = [0]
    for end in range(1, len(data)):
        if data[end - 1] == ord("\n") and end - cuts[-1] >= every and data[:end].count(b'"') % 2 == 0:
            cuts.append(end)
    return cuts


def _check(data: bytes, split_bytes: int, chunk: int = 1 << 20) -> tuple[str, int, tuple[tuple[int, str], ...]]:
    stream = io.BufferedReader(io.BytesIO(data), buffer_size=chunk)  # type: ignore[arg-type]
    return check_stream(stream, file="f.csv", split_bytes=split_bytes)


_TOKENS = st.sampled_from(["a", "b", ",", '"', '""', "\n", "\r\n", "\r", "é"])


@settings(max_examples=300, deadline=None)
@given(st.lists(_TOKENS, max_size=80).map("".join), st.integers(1, 40))
@example('a,"b\nc"\nd,e\n' * 3, 5)
def test_cuts_fall_after_a_line_feed_outside_quotes_and_hash_their_ranges(text: str, every: int) -> None:
    data = text.encode()
    digest, size, ranges = _check(data, every)

    starts = [start for start, _ in ranges] or [0]
    assert starts == _reference_cuts(data, every)
    ends = [*starts[1:], size]
    hashes = [h for _, h in ranges] or [digest]
    assert hashes == [hashlib.sha256(data[a:b]).hexdigest() for a, b in zip(starts, ends, strict=True)]
    assert (digest, size) == (hashlib.sha256(data).hexdigest(), len(data))


def test_cuts_do_not_depend_on_how_the_stream_is_chunked() -> None:
    data = ('1,"two\nlines",x\n3,"a ""quoted"" word",y\n' * 500).encode()
    expected = _check(data, 97)
    for chunk in (1, 7, 64, 4096):
        assert _check(data, 97, chunk) == expected
    assert len(expected[2]) > 100


# One record's fields: plain, quoted with commas/quotes/line breaks, or broken (a stray quote, garbage after one).
_FIELD = st.one_of(
    st.text(alphabet="abc 1", max_size=4),
    st.text(alphabet='ab,"\n\r ', max_size=6).map(lambda v: '"' + v.replace('"', '""') + '"'),
    st.sampled_from(['"12"345', 'a"b', '"open', '"x"y"z', '"a\nb']),
)
_RECORD = st.one_of(
    st.lists(_FIELD, min_size=1, max_size=7).map(",".join),
    st.just(""),  # a blank line
)
_RECORD_TEXT = st.one_of(_RECORD, st.lists(st.text(alphabet="ab1 ", max_size=3), min_size=4, max_size=6).map(",".join))


def _whole(data: bytes) -> Parse:
    stats = ParseStats()
    records = list(parse_records(data.decode(), ADVERTISERS, file="f.csv", stats=stats))
    return records, (stats.records, stats.corrupt, stats.blank_lines)


def _reference(text: str) -> Parse:
    """Strict csv record by record, nothing else: what every parse must equal (the header is the first row)."""
    lines, consumed = iter(io.StringIO(text, newline="")), []

    def tap() -> Iterator[str]:
        for line in lines:
            consumed.append(line)
            yield line

    reader = csv.reader(tap(), strict=True)
    records: list[tuple[tuple[str | None, ...], str | None]] = []
    counts, at = [0, 0, 0], None
    while True:
        consumed.clear()
        try:
            fields = next(reader)
        except StopIteration:
            return records, (counts[0], counts[1], counts[2])
        except csv.Error:
            fields = None
        raw = "".join(consumed)
        if fields == []:
            counts[2] += 1
        elif at is None:
            at = [fields.index(c) for c in ADVERTISERS]  # type: ignore[union-attr]
        else:
            counts[0] += 1
            if fields is None or len(fields) != len(ADVERTISERS):
                counts[1] += 1
                records.append(((None,) * len(ADVERTISERS), raw.removesuffix("\n").removesuffix("\r")))
            else:
                records.append((tuple(fields[p] for p in at), None))


def _arrow(data: bytes, name: str = "f.csv") -> Parse:
    """The records and counts as bronze's Spark task builds them (the ``mapInArrow`` function, run here)."""
    digest = hashlib.sha256(data).hexdigest()
    with tempfile.NamedTemporaryFile(suffix=".csv") as f:
        f.write(data)
        f.flush()
        run = _parse_batches("advertisers", _local_ranges([_Range(name, f.name, 0, None, digest, None)]))
        table = pa.Table.from_batches(list(run([pa.RecordBatch.from_pydict({"id": [0]})])))
    rows = table.to_pylist()
    records = [(tuple(r[c] for c in ADVERTISERS), r["_corrupt_record"]) for r in rows if r["_records"] is None]
    [totals] = [(r["_records"], r["_corrupt"], r["_blank_lines"]) for r in rows if r["_records"] is not None]
    return sorted(records, key=repr), totals


_LINE_ENDS = st.sampled_from(["\n", "\r\n", "\r"])


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(_RECORD_TEXT, _LINE_ENDS), max_size=25), st.permutations(ADVERTISERS), st.booleans())
@example([("1,2,3,4,5", "\n"), ("x" * 140_000 + ",2,3,4,5", "\n")], list(ADVERTISERS), True)  # over csv's field limit
def test_every_parse_equals_strict_csv_record_by_record(
    records: list[tuple[str, str]], header: list[str], final_end: bool
) -> None:
    """The one-line fast path of parse_lines and its Arrow split give exactly what csv gives."""
    text = ",".join(header) + "\n" + "".join(r + end for r, end in records)
    text = text if final_end or not records else text[: -len(records[-1][1])]
    expected = _reference(text)

    stats = ParseStats()
    parsed = list(parse_records(text, ADVERTISERS, file="f.csv", stats=stats))
    assert (parsed, (stats.records, stats.corrupt, stats.blank_lines)) == expected
    assert _arrow(text.encode()) == (sorted(expected[0], key=repr), expected[1])


def _in_ranges(data: bytes, split_bytes: int) -> tuple[Parse, bool]:
    """The records and counts of each range in turn, and whether a range other than the last ended mid-record."""
    digest, size, ranges = _check(data, split_bytes)
    file = LandingFile(Path("f.csv"), "f.csv", "advertisers", digest, size, ranges, tuple(range(len(ADVERTISERS))))
    records: list[tuple[tuple[str | None, ...], str | None]] = []
    counts, misaligned = [0, 0, 0], False
    for start, end, sha in file.parse_ranges():
        stats = ParseStats()
        lines = planned_lines(io.BytesIO(data), file="f.csv", start=start, end=end, sha256=sha)  # type: ignore[arg-type]
        positions = file.positions if start else None
        records += parse_records(lines, ADVERTISERS, file="f.csv", stats=stats, positions=positions)
        counts = [a + b for a, b in zip(counts, (stats.records, stats.corrupt, stats.blank_lines), strict=True)]
        misaligned |= stats.unfinished and end is not None
    return (records, (counts[0], counts[1], counts[2])), misaligned


@settings(max_examples=400, deadline=None)
@given(
    st.lists(_RECORD, max_size=30),
    st.sampled_from(["\n", "\r\n"]),
    st.integers(1, 60),
    st.booleans(),
)
def test_ranges_that_end_outside_a_record_parse_exactly_as_the_whole_file(
    records: list[str], newline: str, split_bytes: int, final_newline: bool
) -> None:
    text = newline.join([",".join(ADVERTISERS), *records]) + (newline if final_newline else "")
    data = text.encode()

    ranged, misaligned = _in_ranges(data, split_bytes)

    if not misaligned:  # the proof the parse relies on: then the ranges are the whole file
        assert ranged == _whole(data)


_WELL_FORMED = st.one_of(
    st.text(alphabet="abc 1", max_size=4),
    st.text(alphabet='ab,"\n\r ', max_size=6).map(lambda v: '"' + v.replace('"', '""') + '"'),
)
_SAMPLE_LIKE = st.one_of(
    st.lists(_WELL_FORMED, min_size=1, max_size=7),
    # the sample's broken quoting, in a record with no line break (after it, the rest of the line is dropped)
    st.lists(st.sampled_from(["a", "1", '"b,c"', '"12"345', '"Spring" Sale']), min_size=1, max_size=7),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_SAMPLE_LIKE, max_size=30), st.integers(1, 60))
def test_well_formed_files_never_need_the_whole_file_parse(fields: list[list[str]], split_bytes: int) -> None:
    """Nor do files with the usual broken quoting (``"12"345``: paired quotes, garbage after the closing one)."""
    data = "\n".join([",".join(ADVERTISERS), *map(",".join, fields)]).encode()

    ranged, misaligned = _in_ranges(data, split_bytes)

    assert not misaligned
    assert ranged == _whole(data)


def test_a_stray_quote_before_quoted_line_breaks_makes_a_range_end_mid_record() -> None:
    data = (",".join(ADVERTISERS) + "\n" + 'x,a"b,c,d,e\n' + '1,"two\nlines",3,4,5\n' * 20).encode()

    ranged, misaligned = _in_ranges(data, 8)

    assert misaligned
    assert ranged != _whole(data)  # which is why such a file is parsed again in one task


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (lambda d: d[:40] + b"X" + d[41:], "a byte in the range"),
        (lambda d: d[:-5], "the file cut short"),
        (lambda d: d + b"1,2,3,4,5\n", "bytes appended"),
    ],
)
def test_a_range_whose_bytes_changed_fails_at_its_end(change: Any, where: str) -> None:
    data = (",".join(ADVERTISERS) + "\n" + "1,2,3,4,5\n" * 20).encode()
    digest, size, ranges = _check(data, 64)
    file = LandingFile(Path("f.csv"), "f.csv", "advertisers", digest, size, ranges, tuple(range(5)))
    changed = change(data)

    failures = []
    for start, end, sha in file.parse_ranges():
        try:
            list(planned_lines(io.BytesIO(changed), file="f.csv", start=start, end=end, sha256=sha))  # type: ignore[arg-type]
        except UnreadableFileError as exc:
            failures.append(str(exc))
    assert failures, where
    assert all("f.csv: changed since its batch was planned" in f for f in failures)


def _rows(parsed: Any, table: str) -> list[tuple[Any, ...]]:
    return sorted(map(tuple, records_only(parsed.frame, table).collect()), key=repr)


def test_spark_parses_a_file_in_ranges_exactly_as_in_one_task(
    spark: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The sample's quoted fields and broken lines in many small ranges; a stray quote sends a file to one task."""
    generate(tmp_path, scale=0.05, seed=7, dirty_rate=0.2)
    stray = tmp_path / "campaigns_stray.csv"
    stray.write_text(
        (tmp_path / "campaigns_part1.csv").read_text().replace("\n", '\nstray"quote,x\n', 1)
        + '1,2,"two\nlines",4,5,6,7,8,9\n' * 30,
        encoding="utf-8",
    )
    whole, _ = discover(tmp_path)
    ranged, _ = discover(tmp_path, split_bytes=512)
    by_name = {f.source_file: f for f in ranged}
    assert len(by_name["campaigns_part1.csv"].ranges) > 10
    assert len(by_name["campaigns_stray.csv"].ranges) > 1  # fewer: after the stray quote, the parity is off

    def files(found: list[LandingFile], table: str) -> list[LandingFile]:
        return [f for f in found if f.table == table][:3]  # a few performance weeks are enough

    for table in ("advertisers", "campaigns", "performance"):
        one = parse_files(spark, table, files(whole, table))
        with caplog.at_level(logging.WARNING, logger="lakehouse.bronze.parse"):
            many = parse_files(spark, table, files(ranged, table))
        assert many.frame.rdd.getNumPartitions() >= sum(len(f.ranges) for f in files(ranged, table))
        assert many.stats == one.stats
        assert _rows(many, table) == _rows(one, table)
        one.frame.unpersist()
        many.frame.unpersist()

    retried = [r.getMessage() for r in caplog.records if "parsing each such file again" in r.getMessage()]
    assert len(retried) == 1
    assert "campaigns_stray.csv" in retried[0]
    assert "campaigns_part1.csv" not in retried[0]
