"""A hostile fixture: every value a loader gets wrong when it is not exact, and a NULL in every column."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from lakehouse.contracts import Column, Table

UTC = dt.UTC

HOSTILE = Table(
    name="hostile",
    columns=(
        Column("id", "bigint"),
        Column("text_value", "string"),
        Column("money", "decimal(12,2)"),
        Column("day", "date"),
        Column("at", "timestamp"),
        Column("big", "bigint"),
        Column("small", "int"),
        Column("flag", "boolean"),
        Column("ratio", "double"),
        Column("tags", "array<string>"),
    ),
    key=("id",),
    partition_by=("day",),
)

_TEXTS = [
    "",  # empty string, which must not become NULL
    "\\N",  # the literal two characters COPY uses for NULL
    "double \"quotes\" and 'single'",
    "comma, separated, values",
    "line one\nline two",
    "carriage\r\nreturn",
    "tab\tseparated",
    "back\\slash \\t not a tab \\\\ two",
    "unicode: café, Straße, 日本語, emoji 📈🚀, zero-width\u200bspace",
    "  leading and trailing spaces  ",
    "{not,an,array}",
    "NULL",
    "null",
]


def hostile_rows() -> list[tuple[Any, ...]]:
    """Rows with aware UTC timestamps, as psycopg2 returns them from ``timestamptz``."""
    rows: list[tuple[Any, ...]] = []
    for i, text in enumerate(_TEXTS):
        rows.append(
            (
                i + 1,
                text,
                Decimal("1234567890.12") if i % 2 else Decimal("-0.01"),
                dt.date(2024, 2, 9) + dt.timedelta(days=i % 3),
                dt.datetime(2024, 3, 31, 1, 30, 0, 123456, tzinfo=UTC) + dt.timedelta(hours=i),  # crosses EU DST change
                9_223_372_036_854_775_807 - i,
                -2_147_483_648 + i,
                i % 2 == 0,
                0.1 + i,
                [text, None, 'q"uote', "back\\slash", ""],
            )
        )
    rows.append((len(_TEXTS) + 1, None, None, None, None, None, None, None, None, None))
    rows.append(
        (
            len(_TEXTS) + 2,
            "extremes",
            Decimal("9999999999.99"),
            dt.date(1, 1, 1),
            dt.datetime(1970, 1, 1, 0, 0, 0, tzinfo=UTC),
            -9_223_372_036_854_775_808,
            2_147_483_647,
            False,
            1e-300,
            [],
        )
    )
    return rows
