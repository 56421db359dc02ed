"""Landing CSVs: finding them, matching their headers to a table contract, and parsing their records.

Parsing follows RFC 4180 strictly (Python's ``csv`` module with ``strict=True``) and keeps every record:
a record that does not parse into the header's fields — too many or too few fields, or broken quoting — is
returned with its raw text instead of being dropped or silently repaired. A quoted field may span lines; it
belongs to one record. Blank lines carry no data and are counted, not returned. Values are verbatim: no
trimming, no case changes, no type inference.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from lakehouse.contracts import SOURCE_COLUMNS
from lakehouse.errors import LakehouseError

_TABLE_PREFIX = re.compile(r"^([A-Za-z]+)")


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


@dataclass(frozen=True)
class LandingFile:
    """A CSV in the landing directory. ``table`` comes from the file name's prefix."""

    path: Path
    table: str
    content_hash: str
    bytes: int

    @property
    def name(self) -> str:
        return self.path.name


@dataclass(frozen=True)
class Refusal:
    """A file that will not be ingested, and why."""

    path: Path
    reason: str


@dataclass
class ParseStats:
    records: int = 0
    corrupt: int = 0
    blank_lines: int = 0
    header: list[str] = field(default_factory=list)


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
    """Iterates lines for ``csv.reader`` and remembers which ones the current record consumed."""

    def __init__(self, text: str) -> None:
        self._lines = iter(io.StringIO(text, newline=""))
        self.consumed: list[str] = []

    def __iter__(self) -> _Tap:
        return self

    def __next__(self) -> str:
        line = next(self._lines)
        self.consumed.append(line)
        return line


def parse_records(
    text: str, expected: tuple[str, ...], *, file: str, stats: ParseStats | None = None
) -> Iterator[tuple[tuple[str | None, ...], str | None]]:
    """Yield ``(values in contract order, None)`` per good record, ``((None, …), raw text)`` per bad one.

    The first non-blank record is the header (see :func:`match_header`).
    """
    stats = stats if stats is not None else ParseStats()
    tap = _Tap(text)
    reader = csv.reader(tap, strict=True)
    positions: list[int] | None = None
    empty = (None,) * len(expected)
    while True:
        tap.consumed = []
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error:
            fields = None
        raw = "".join(tap.consumed)
        if fields == []:
            stats.blank_lines += 1
            continue
        if positions is None:
            if fields is None:
                raise HeaderMismatchError(file, missing=list(expected), unknown=[raw.strip()], duplicated=[])
            stats.header = fields
            positions = match_header(fields, expected, file=file)
            continue
        stats.records += 1
        if fields is None or len(fields) != len(positions):
            stats.corrupt += 1
            yield empty, raw.removesuffix("\n").removesuffix("\r")
        else:
            yield tuple(fields[p] for p in positions), None


def read_header(path: Path) -> list[str]:
    """The first record of ``path`` (the header) without reading the rest of the file."""
    with path.open(newline="", encoding="utf-8") as f:
        for fields in csv.reader(f, strict=True):
            if fields:
                return fields
    return []


def discover(input_dir: Path) -> tuple[list[LandingFile], list[Refusal]]:
    """Every ``*.csv`` below ``input_dir`` that belongs to a known table and has an acceptable header.

    Files are returned in name order; refusals carry the reason (unknown table, bad header, not UTF-8).
    """
    files: list[LandingFile] = []
    refused: list[Refusal] = []
    for path in sorted(p for p in input_dir.rglob("*") if p.is_file() and p.suffix.lower() == ".csv"):
        table = table_of(path.name)
        if table not in SOURCE_COLUMNS:
            refused.append(Refusal(path, f"no table named {table!r} (expected {', '.join(SOURCE_COLUMNS)})"))
            continue
        try:
            digest = content_hash(path)
            match_header(read_header(path), SOURCE_COLUMNS[table], file=path.name)
        except HeaderMismatchError as exc:
            refused.append(Refusal(path, str(exc)))
            continue
        except UnicodeDecodeError as exc:
            refused.append(Refusal(path, f"{path.name}: not valid UTF-8 ({exc.reason})"))
            continue
        except csv.Error as exc:
            refused.append(Refusal(path, f"{path.name}: cannot read the header: {exc}"))
            continue
        files.append(LandingFile(path, table, digest, path.stat().st_size))
    return files, refused


def content_hash(path: Path) -> str:
    """SHA-256 of the file's bytes; also proves the whole file is valid UTF-8 (raises UnicodeDecodeError)."""
    digest = hashlib.sha256()
    decoder = codecs.getincrementaldecoder("utf-8")()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
            decoder.decode(chunk)
    decoder.decode(b"", final=True)
    return digest.hexdigest()
