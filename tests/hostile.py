"""Hostile fixtures: every value a loader gets wrong when it is not exact, and a NULL in every column; landing
file names a path API gets wrong, and landing bytes no PostgreSQL text can hold."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

from lakehouse.contracts import SOURCE_COLUMNS, Column, Table

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


# Names the file system allows and a path API mangles: URL encoding (space, parentheses, #, %, a literal %20,
# unicode), Hadoop globs ([ ] * ? { }), a colon (a URI scheme to Hadoop), a backslash (a glob escape), quotes,
# a tab and a newline.
HOSTILE_FILE_NAMES = (
    "campaigns (1).csv",
    "campaigns #2.csv",
    "campaigns 100%.csv",
    "campaigns%20encoded.csv",
    "campaigns_ünïcødé_日本.csv",
    "campaigns[1].csv",
    "campaigns*.csv",
    "campaigns?.csv",
    "campaigns{a,b}.csv",
    "campaigns:colon.csv",
    "campaigns\\back.csv",
    "campaigns 'single' \"double\".csv",
    "campaigns\ttab\nnewline.csv",
)
# A NUL byte: valid UTF-8, but PostgreSQL text (and so COPY) has no way to hold it.
NUL_FIELD = "before\x00after"


def campaigns_csv(*names: str) -> str:
    """A small campaigns landing file: the header and one valid record per campaign name."""
    lines = [",".join(SOURCE_COLUMNS["campaigns"])]
    lines += [
        f"{900 + i},1,{name},Search,Active,Sales,2024-01-01,2024-12-31,10.00,100.00" for i, name in enumerate(names)
    ]
    return "\n".join(lines) + "\n"


def land_hostile_names(folder: Path) -> dict[str, str]:
    """One campaigns file under every hostile name in ``folder`` (distinct contents, so none is a duplicate);
    returns ``{file name: the campaign name it holds}``."""
    folder.mkdir(parents=True, exist_ok=True)
    landed = {}
    for i, name in enumerate(HOSTILE_FILE_NAMES):
        landed[name] = f"hostile name {i}"
        (folder / name).write_text(campaigns_csv(landed[name]), encoding="utf-8")
    return landed
