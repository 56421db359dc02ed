"""Landing CSVs: finding them, matching their headers to a table contract, and parsing their records.

Only regular files inside the landing directory are read: a symbolic link is refused, never followed, so nothing
outside the directory can be ingested or quoted in a refusal. A file is known by its path relative to the
landing directory (``_source_file``), so equal names in two subfolders stay apart. Its bytes are checked before
a batch is planned: they must be UTF-8 without NUL bytes (PostgreSQL text cannot hold a NUL).

A large file is cut into ranges of about ``split_bytes`` (:func:`discover`), each parsed by its own task: a cut
falls just after a line feed preceded by an even number of ``"`` (outside any quoted field, if the quoting is
well formed), and each range's SHA-256 is kept so that the task can prove it read the planned bytes. A cut is
only a guess; the parser proves it (see :mod:`lakehouse.bronze.parse`).

Parsing follows RFC 4180 strictly (Python's ``csv`` module with ``strict=True``) and keeps every record:
a record that does not parse into the header's fields — too many or too few fields, or broken quoting — is
returned with its raw text instead of being dropped or silently repaired. A quoted field may span lines; it
belongs to one record. Blank lines carry no data and are counted, not returned. Values are verbatim: no
trimming, no case changes, no type inference.
"""

from __future__ import annotations

import codecs
import csv
import errno
import functools
import hashlib
import io
import logging
import os
import re
import stat
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from lakehouse.contracts import SOURCE_COLUMNS
from lakehouse.errors import LakehouseError
from lakehouse.settings import DEFAULT_SPLIT_BYTES

log = logging.getLogger(__name__)
_TABLE_PREFIX = re.compile(r"^([A-Za-z]+)")
_CHUNK = 1 << 20
# O_NOFOLLOW: a link swapped in after discovery is not opened. O_NONBLOCK: opening a FIFO does not hang.
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
Ranges = tuple[tuple[int, str], ...]  # (first byte, SHA-256 of the range); see LandingFile.ranges
_LINK = "a symbolic link; only regular files inside the landing directory are read (links are not followed)"


class HeaderMismatchError(LakehouseError):
    """A landing file's header is missing contract columns or has unknown ones."""

    def __init__(self, file: str, *, missing: list[str], unknown: list[str], duplicated: list[str]) -> None:
        self.file, self.missing, self.unknown, self.duplicated = file, missing, unknown, duplicated
        parts = [
            f"{label}: {', '.join(names)}"
            for label, names in (("missing", missing), ("unknown", unknown), ("duplicated", duplicated))
            if names
        ]
        super().__init__(f"{file}: header refused ({'; '.join(parts)})")


class UnreadableFileError(LakehouseError):
    """A landing file cannot be ingested as it is: not a regular file, not UTF-8, a NUL byte, or changed."""

    def __init__(self, file: str, reason: str) -> None:
        self.file, self.reason = file, reason
        super().__init__(f"{file}: {reason}")


@dataclass(frozen=True)
class LandingFile:
    """A CSV in the landing directory. ``path`` is the local file, or an object's ``s3a://bucket/key`` URI (see
    :mod:`lakehouse.bronze.landing_s3`); ``source_file`` is its path relative to the landing directory or prefix
    (``/``-separated); ``table`` comes from the file name's prefix."""

    path: Path | str
    source_file: str
    table: str
    content_hash: str
    bytes: int
    # Where a large file is cut for parsing: (first byte, SHA-256 of the bytes up to the next range's first byte,
    # or to the end). Empty: one range, the whole file (``content_hash``).
    ranges: Ranges = ()
    # The header's columns in contract order (:func:`match_header`): what a range after the first parses with.
    positions: tuple[int, ...] = ()

    def parse_ranges(self) -> list[tuple[int, int | None, str]]:
        """``(first byte, end or None for the end of the file, SHA-256)`` per range, in file order."""
        if not self.ranges:
            return [(0, None, self.content_hash)]
        ends: list[int | None] = [start for start, _ in self.ranges[1:]]
        return [(start, end, digest) for (start, digest), end in zip(self.ranges, [*ends, None], strict=True)]


@dataclass(frozen=True)
class Refusal:
    """A file that will not be ingested, and why."""

    path: Path | str
    reason: str


@dataclass
class ParseStats:
    records: int = 0
    corrupt: int = 0
    blank_lines: int = 0
    header: list[str] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)  # of the contract's columns in the header
    unfinished: bool = False  # the text ended inside a record (an unclosed quote): that record is corrupt


def table_of(file_name: str) -> str:
    """``performance_2024-02-09.csv`` -> ``performance`` (the prefix before the first non-letter)."""
    match = _TABLE_PREFIX.match(file_name)
    return match.group(1).lower() if match else ""


def match_header(header: list[str], expected: tuple[str, ...], *, file: str) -> list[int]:
    """Positions of ``expected`` columns in ``header``, matched case-insensitively after trimming.

    Raises:
        HeaderMismatchError: a contract column is absent, a header name is not in the contract, or a name
            appears twice.
    """
    names = [h.strip().lower() for h in header]
    if names and names[0].startswith("\ufeff"):  # a UTF-8 byte order mark, as spreadsheet exports write
        names[0] = names[0][1:]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    missing = [c for c in expected if c not in names]
    unknown = [h.strip() for h, n in zip(header, names, strict=True) if n not in expected]
    if missing or unknown or duplicated:
        raise HeaderMismatchError(file, missing=missing, unknown=unknown, duplicated=duplicated)
    return [names.index(c) for c in expected]


class _Tap:
    """Iterates lines for ``csv.reader``, remembering which ones the current record consumed and whether the
    lines ran out; a line handed back with :meth:`push` comes first."""

    def __init__(self, lines: Iterable[str]) -> None:
        self._lines = iter(lines)
        self._pushed: str | None = None
        self.consumed: list[str] = []
        self.exhausted = False

    def __iter__(self) -> _Tap:
        return self

    def __next__(self) -> str:
        if self._pushed is not None:
            line, self._pushed = self._pushed, None
        else:
            try:
                line = next(self._lines)
            except StopIteration:
                self.exhausted = True
                raise
        self.consumed.append(line)
        return line

    def take(self) -> str | None:
        """The next line, not counted as consumed; None when the lines ran out."""
        line = next(self._lines, None)
        self.exhausted = line is None
        return line

    def push(self, line: str) -> None:
        """Hand ``line`` back: the csv reader reads it next."""
        self._pushed = line


Record = tuple[tuple[str | None, ...], str | None]  # (values in contract order, None) or ((None, ...), raw text)


def parse_lines(
    text: str | Iterable[str],
    expected: tuple[str, ...],
    *,
    file: str,
    stats: ParseStats | None = None,
    positions: Sequence[int] | None = None,
) -> Iterator[str | Record]:
    """:func:`parse_records`, except that a good record on one line without a quote comes back as that line's
    text (its line ending removed), whose fields are its comma-separated parts in the header's order.

    Strict csv reads such a line exactly so, and most lines are such lines: they skip the csv reader.
    """
    stats = stats if stats is not None else ParseStats()
    tap = _Tap(io.StringIO(text, newline="") if isinstance(text, str) else text)
    reader = csv.reader(tap, strict=True)
    at: list[int] | None = list(positions) if positions is not None else None
    stats.positions = at or []
    width, limit = len(expected), csv.field_size_limit()
    empty = (None,) * width
    while (line := tap.take()) is not None:
        fields: list[str] | None
        if '"' not in line and len(line) <= limit:  # no quote: the line is the record, its commas the fields
            content = line.rstrip("\r\n")
            if at is not None and content:
                stats.records += 1
                if content.count(",") + 1 == width:
                    yield content
                else:
                    stats.corrupt += 1
                    yield empty, content
                continue
            fields, raw = (content.split(",") if content else []), line
        else:
            tap.push(line)
            tap.consumed = []
            try:
                fields = next(reader)
            except csv.Error:
                fields = None
                stats.unfinished = tap.exhausted  # strict csv: "unexpected end of data" inside a quoted field
            raw = "".join(tap.consumed)
        if fields == []:
            stats.blank_lines += 1
            continue
        if at is None:
            if fields is None:
                raise HeaderMismatchError(file, missing=list(expected), unknown=[raw.strip()], duplicated=[])
            stats.header = fields
            at = stats.positions = match_header(fields, expected, file=file)
            continue
        stats.records += 1
        if fields is None or len(fields) != width:
            stats.corrupt += 1
            yield empty, raw.removesuffix("\n").removesuffix("\r")
        else:
            yield tuple([fields[p] for p in at]), None


def parse_records(
    text: str | Iterable[str],
    expected: tuple[str, ...],
    *,
    file: str,
    stats: ParseStats | None = None,
    positions: Sequence[int] | None = None,
) -> Iterator[Record]:
    """Yield ``(values in contract order, None)`` per good record, ``((None, …), raw text)`` per bad one.

    ``text`` is the text, or its lines with their line endings (``newline=""``). The first non-blank record is
    the header (see :func:`match_header`), unless ``positions`` (a range after a file's first) gives the
    contract columns' places. ``stats.unfinished`` tells whether the text ended inside a record.
    """
    stats = stats if stats is not None else ParseStats()
    for record in parse_lines(text, expected, file=file, stats=stats, positions=positions):
        if isinstance(record, str):
            fields = record.split(",")
            yield tuple([fields[p] for p in stats.positions]), None
        else:
            yield record


def source_name(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` with ``/`` separators; bytes that are not UTF-8 appear as ``\\xNN``."""
    relative = path.relative_to(root).as_posix()
    return relative.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def open_regular(path: Path, *, file: str) -> BinaryIO:
    """Open ``path`` for reading in binary mode if it is a regular file, never through a symbolic link.

    Raises:
        UnreadableFileError: ``path`` is a link, not a regular file, or cannot be opened (the message names
            ``file`` and the reason, never what a link points to).
    """
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        reason = _LINK if exc.errno == errno.ELOOP else f"cannot be read ({exc.strerror})"
        raise UnreadableFileError(file, reason) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UnreadableFileError(file, "not a regular file")
    return os.fdopen(fd, "rb")


def header_of(f: BinaryIO) -> list[str]:
    """The first non-blank record of a binary stream, read no further than that record."""
    with io.TextIOWrapper(f, encoding="utf-8", newline="") as text:
        for fields in csv.reader(text, strict=True):
            if fields:
                return fields
    return []


class _Cutter:
    """Cuts a stream into ranges of about ``every`` bytes, each starting just after a line feed preceded by an even
    number of ``"`` (outside quotes, if the quoting is well formed), and hashes each range."""

    def __init__(self, every: int) -> None:
        self.every = every
        self.starts = [0]
        self.hashes: list[str] = []
        self._hash = hashlib.sha256()
        self._offset = 0  # the file offset of the chunk being fed
        self._odd = False  # an odd number of quotes before it

    def feed(self, chunk: bytes) -> None:
        view, at, end = memoryview(chunk), 0, len(chunk)
        while at < end:
            look = max(self.starts[-1] + self.every - 1 - self._offset, at)  # the earliest line feed that may cut
            cut = self._cut(chunk, at, look) if look < end else None
            stop = end if cut is None else cut
            self._hash.update(view[at:stop])
            self._odd ^= bool(chunk.count(b'"', at, stop) & 1)
            if cut is None:
                break
            self.hashes.append(self._hash.hexdigest())
            self._hash = hashlib.sha256()
            self.starts.append(self._offset + cut)
            at = cut
        self._offset += end

    def _cut(self, chunk: bytes, at: int, look: int) -> int | None:
        """Just after the first line feed at or after ``look`` with an even number of quotes before it."""
        odd = self._odd ^ bool(chunk.count(b'"', at, look) & 1)
        while (feed := chunk.find(b"\n", look)) >= 0:
            odd ^= bool(chunk.count(b'"', look, feed) & 1)
            if not odd:
                return feed + 1
            look = feed + 1
        return None

    def ranges(self) -> Ranges:
        """Every range's first byte and SHA-256; empty if the stream is one range."""
        starts, hashes = list(self.starts), [*self.hashes, self._hash.hexdigest()]
        if len(starts) > 1 and starts[-1] == self._offset:  # a cut at the very end: no empty last range
            starts.pop()
            hashes.pop()
        return tuple(zip(starts, hashes, strict=True)) if len(starts) > 1 else ()


def check_stream(f: BinaryIO, *, file: str, split_bytes: int | None = None) -> tuple[str, int, Ranges]:
    """SHA-256 and size of a stream's bytes, once they are proven to be UTF-8 without a NUL byte, and its
    ranges for parsing when it is longer than ``split_bytes`` (see :attr:`LandingFile.ranges`).

    Raises:
        UnreadableFileError: naming ``file`` and the line (counted by ``\\n``) of the first offending byte.
    """
    digest, decoder = hashlib.sha256(), codecs.getincrementaldecoder("utf-8")()
    cutter = _Cutter(split_bytes) if split_bytes else None
    size = lines = 0
    while chunk := f.read(_CHUNK):
        held = len(decoder.getstate()[0])  # the start of a character split across chunks (never a newline)
        problem: tuple[int, str] | None = None
        try:
            decoder.decode(chunk)
        except UnicodeDecodeError as exc:
            problem = (max(exc.start - held, 0), f"not valid UTF-8 ({exc.reason})")
        nul = chunk.find(b"\0")
        if nul >= 0 and (problem is None or nul < problem[0]):
            problem = (nul, "a NUL byte (0x00), which PostgreSQL text cannot hold; remove it and land it again")
        if problem is not None:
            line = lines + chunk.count(b"\n", 0, problem[0]) + 1
            raise UnreadableFileError(file, f"line {line}: {problem[1]}")
        digest.update(chunk)
        if cutter is not None:
            cutter.feed(chunk)
        lines += chunk.count(b"\n")
        size += len(chunk)
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        raise UnreadableFileError(file, f"line {lines + 1}: not valid UTF-8 ({exc.reason})") from None
    return digest.hexdigest(), size, cutter.ranges() if cutter is not None else ()


def inspect(
    path: Path | str, source: str, opener: Callable[[], BinaryIO], *, split_bytes: int | None = None
) -> LandingFile | Refusal:
    """One landing file checked as :func:`discover` checks it: a known table, clean bytes, an acceptable header.
    ``opener`` opens its bytes afresh (called twice: the content, then the header)."""
    table = table_of(source.rsplit("/", 1)[-1])
    if table not in SOURCE_COLUMNS:
        return Refusal(path, f"{source}: no table named {table!r} (expected {', '.join(SOURCE_COLUMNS)})")
    try:
        with opener() as f:
            digest, size, ranges = check_stream(f, file=source, split_bytes=split_bytes)
        positions = match_header(header_of(opener()), SOURCE_COLUMNS[table], file=source)
    except (HeaderMismatchError, UnreadableFileError) as exc:
        return Refusal(path, str(exc))
    except csv.Error as exc:
        return Refusal(path, f"{source}: cannot read the header: {exc}")
    return LandingFile(path, source, table, digest, size, ranges, tuple(positions))


def discover(input_dir: Path, *, split_bytes: int = DEFAULT_SPLIT_BYTES) -> tuple[list[LandingFile], list[Refusal]]:
    """Every regular ``*.csv`` file below ``input_dir`` that belongs to a known table, has an acceptable header
    and clean bytes (UTF-8, no NUL); a file longer than ``split_bytes`` is cut into ranges for parsing.

    Files are returned in the order of their relative paths; refusals carry the reason (a link, not a regular
    file, unknown table, bad header, not UTF-8, a NUL byte), naming the file by its relative path.
    """
    files: list[LandingFile] = []
    refused: list[Refusal] = []
    for count, (path, problem) in enumerate(_candidates(input_dir), start=1):
        source = source_name(path, input_dir)
        log.info("landing: checking file %d, %s", count, source, extra={"progress": True})
        if problem is not None:
            refused.append(Refusal(path, f"{source}: {problem}"))
            continue
        checked = inspect(path, source, functools.partial(open_regular, path, file=source), split_bytes=split_bytes)
        if isinstance(checked, LandingFile):
            files.append(checked)
        else:
            refused.append(checked)
    return sorted(files, key=lambda f: f.source_file), refused


def _candidates(folder: Path, *, top: bool = True) -> Iterator[tuple[Path, str | None]]:
    """``(path, None)`` per ``*.csv`` entry below ``folder`` that is no link, ``(path, reason)`` per entry refused
    on sight: a link where a CSV or a folder would be read, or a subfolder that cannot be listed."""
    try:
        with os.scandir(folder) as listing:
            entries = sorted(listing, key=lambda e: e.name)
    except OSError as exc:
        if top:
            raise
        yield folder, f"folder cannot be read ({exc.strerror})"
        return
    for entry in entries:
        path = Path(entry.path)
        is_csv = entry.name.lower().endswith(".csv")
        if entry.is_symlink():
            if is_csv or entry.is_dir():  # is_dir follows the link, but only to learn what it would hide
                yield path, _LINK
        elif entry.is_dir(follow_symlinks=False):
            yield from _candidates(path, top=False)
        elif is_csv:
            yield path, None
