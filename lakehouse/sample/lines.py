"""Landing lines of the sample-data generator: RFC 4180 records, and injected lines with their manifest entries."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from lakehouse.contracts import SILVER

Values = dict[str, str]


def quote(value: str) -> str:
    """One RFC 4180 field: quoted only when it holds a comma, quote, CR or LF; embedded quotes doubled."""
    if '"' in value or "," in value or "\n" in value or "\r" in value:
        return '"' + value.replace('"', '""') + '"'
    return value


def format_record(fields: Sequence[str]) -> str:
    """One RFC 4180 record, without its line terminator."""
    return ",".join(quote(f) for f in fields)


@dataclass
class Injected:
    """One deliberately crafted line: its values, how to break its structure, and Silver's expected verdict."""

    table: str
    kind: str
    values: Values | None  # None: a blank line, which is not a record
    reasons: tuple[str, ...] = ()
    raw: tuple[tuple[str, str], ...] = ()  # (column, text written verbatim, unquoted)
    too_few: bool = False  # drop the file's last column

    @property
    def key(self) -> str | None:
        if self.values is None or "malformed_line" in self.reasons:
            return None
        return self.values[SILVER[self.table].key[0]].strip(" ") or None

    def render(self, order: Sequence[str]) -> str:
        """The line as written in a file whose columns are ``order``."""
        if self.values is None:
            return ""
        raw = dict(self.raw)
        cells = [raw[c] if c in raw else quote(self.values[c]) for c in order]
        return ",".join(cells[:-1] if self.too_few else cells)

    def entry(self, file: str, line: int) -> dict[str, Any]:
        """The manifest's ``injected`` entry; ``line`` is the 1-based physical line the record starts on."""
        return {
            "table": self.table,
            "file": file,
            "line": line,
            "key": self.key,
            "defect": self.kind,
            "expected_reasons": sorted(self.reasons),
        }
