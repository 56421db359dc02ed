"""How many COPY streams a load takes: one per ``ROWS_PER_STREAM`` expected rows, at least one, at most the
session's parallelism; the parallelism when the rows are not known."""

from __future__ import annotations

from typing import Any, cast

import pytest

from lakehouse.adapters.loader import ROWS_PER_STREAM, TableLoad, _streams
from lakehouse.contracts import Column, Table

TABLE = Table("t", (Column("id", "bigint"),), key=("id",))


@pytest.mark.parametrize(
    ("expected", "streams"),
    [
        (0, 1),
        (1, 1),
        (ROWS_PER_STREAM, 1),
        (ROWS_PER_STREAM + 1, 2),
        (3 * ROWS_PER_STREAM, 3),
        (7 * ROWS_PER_STREAM + 1, 8),
        (10**9, 8),
        (None, 8),
    ],
)
def test_streams_follow_the_expected_rows_up_to_the_parallelism(expected: int | None, streams: int) -> None:
    load = TableLoad(cast(Any, None), TABLE, "s", expected)  # the frame is not looked at

    assert _streams(load, 8) == streams
