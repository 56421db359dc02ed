"""How many COPY streams a load takes (one per ``ROWS_PER_STREAM`` expected rows, at least one, at most the
session's parallelism; the parallelism when the rows are not known), and what its staging tables are named."""

from __future__ import annotations

from typing import Any, cast

import pytest

from lakehouse.adapters.loader import ROWS_PER_STREAM, TableLoad, _streams
from lakehouse.adapters.staging import LoadSession
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


def test_staging_names_fit_postgresqls_63_bytes_and_stay_distinct_for_any_target() -> None:
    """PostgreSQL truncates identifiers at 63 bytes, not characters: a long non-ASCII target must neither lose
    its suffixes (the rows and claims tables would then share a name) nor be cut inside a character."""
    session = LoadSession(conn=None, load_id=0xDEADBEEF)  # type: ignore[arg-type]  # names need no connection
    for target in ("silver.performance", "ünïcödé_schéma." + "tâblé" * 20, "s." + "x" * 200):
        rows, claims = session.stage_names(3, target)
        assert rows != claims
        assert rows.startswith("deadbeef_3_")
        assert (rows[-5:], claims[-7:]) == ("_rows", "_claims")
        assert max(len(rows.encode()), len(claims.encode())) <= 63
        assert rows.removesuffix("_rows") == claims.removesuffix("_claims")
