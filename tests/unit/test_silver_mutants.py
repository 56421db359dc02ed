"""Wrong silvers that the Silver properties must reject, so the properties are known not to pass vacuously.

Each mutant wraps silver's :func:`classify` and breaks one promise of the README ("The layers"). On one fixed
bronze example, which silver's own classification passes, :func:`check_classification` (the check the
Hypothesis property runs) must raise for every mutant, naming exactly the properties the mutant breaks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from lakehouse.contracts import SOURCE_COLUMNS
from lakehouse.silver.transforms import DUPLICATE, QUARANTINED, SILVER_ROW, SUPERSEDED, classify
from tests.unit.test_silver_properties import (
    BATCHES,
    CONFLICT,
    EVERY_ROW_ONCE,
    FILES,
    OUTCOME_PER_ROW,
    SILVER_PER_KEY,
    Row,
    check_classification,
    classified,
)

RAW = SOURCE_COLUMNS["performance"]
B1, B2, B3 = BATCHES
FA, FB = FILES
VALID = {"campaign_id": "10", "date": "2024-02-09", "impressions": "100", "clicks": "5", "conversions": "1"}


def row(key: str, batch: str, file: str, **changes: str) -> Row:
    values = {"performance_id": key, **VALID, "cost": "1.50", "revenue": "3.00", **changes}
    return values | {"_corrupt_record": None, "_batch_id": batch, "_source_file": file}


EXAMPLE = [
    # key 1: b1's version is superseded by b2's, delivered twice and spelled differently
    row("1", B1, FA),
    row("1", B2, FA, cost="2"),
    row(" 1", B2, FB, cost="2.00"),
    # key 2: b1's version outlives b2's conflicting versions
    row("2", B1, FA),
    row("2", B2, FA, clicks="50"),
    row("2", B2, FB, clicks="6"),
    # key 3: only conflicting versions, so no silver row
    row("3", B3, FA, revenue="10"),
    row("3", B3, FA, revenue="10.01"),
    # key 4: a newer version breaking two rules does not replace b1's
    row("4", B1, FB),
    row("4", B3, FA, impressions="-1", cost="1,5"),
    row("", B3, FB) | dict.fromkeys(RAW) | {"_corrupt_record": "4,10,2024-02-09"},
]

KEY, OUTCOME = "_typed.performance_id", "_outcome"
Mutant = Callable[[DataFrame, str, Any], DataFrame]


def _kept() -> Column:
    """The one kept copy of a version in a batch."""
    return F.col(OUTCOME).isin(SILVER_ROW, SUPERSEDED)


def _mark(df: DataFrame, when: Column, outcome: str, reasons: tuple[str, ...] = ()) -> DataFrame:
    """Give the rows matching ``when`` another outcome and reasons."""
    new_reasons = F.array(*map(F.lit, reasons)).cast("array<string>")
    return (
        df.withColumn("_hit", when)
        .withColumn(OUTCOME, F.when(F.col("_hit"), F.lit(outcome)).otherwise(F.col(OUTCOME)))
        .withColumn("_reasons", F.when(F.col("_hit"), new_reasons).otherwise(F.col("_reasons")))
        .drop("_hit")
    )


def _repick(df: DataFrame, *, latest: bool = True) -> DataFrame:
    """Pick each key's silver row again: its kept copy from the latest (or the oldest) batch."""
    batch = F.col("_batch_id").desc() if latest else F.col("_batch_id").asc()
    first = F.row_number().over(Window.partitionBy(KEY).orderBy(_kept().desc(), batch)) == 1
    picked = F.when(_kept(), F.when(first, F.lit(SILVER_ROW)).otherwise(F.lit(SUPERSEDED)))
    return df.withColumn(OUTCOME, picked.otherwise(F.col(OUTCOME)))


def _first_silver_row() -> Column:
    silver = F.col(OUTCOME) == SILVER_ROW
    return silver & (F.col(KEY) == F.min(F.when(silver, F.col(KEY))).over(Window.partitionBy()))


def every_valid_row_conflicts(bronze: DataFrame, table: str, parent: Any) -> DataFrame:
    """Issue 11, finding 7: every valid row is quarantined as a conflicting duplicate."""
    return _mark(classify(bronze, table, parent), F.col(OUTCOME) != QUARANTINED, QUARANTINED, (CONFLICT,))


def one_silver_row_conflicts(bronze: DataFrame, table: str, parent: Any) -> DataFrame:
    """One key's silver row is quarantined as a conflicting duplicate (the old property allowed it)."""
    return _mark(classify(bronze, table, parent), _first_silver_row(), QUARANTINED, (CONFLICT,))


def drops_a_silver_row(bronze: DataFrame, table: str, parent: Any) -> DataFrame:
    classified = classify(bronze, table, parent).withColumn("_drop", _first_silver_row())
    return classified.where(~F.col("_drop")).drop("_drop")


def oldest_batch_wins(bronze: DataFrame, table: str, parent: Any) -> DataFrame:
    return _repick(classify(bronze, table, parent), latest=False)


def superseded_stays_in_silver(bronze: DataFrame, table: str, parent: Any) -> DataFrame:
    return _mark(classify(bronze, table, parent), F.col(OUTCOME) == SUPERSEDED, SILVER_ROW)


def duplicates_are_kept(bronze: DataFrame, table: str, parent: Any) -> DataFrame:
    """Identical copies in one batch are not collapsed: each gets its kept copy's outcome."""
    kept = F.max(F.when(_kept(), F.col(OUTCOME))).over(Window.partitionBy(KEY, "_batch_id"))
    classified = classify(bronze, table, parent)
    return classified.withColumn(OUTCOME, F.when(F.col(OUTCOME) == DUPLICATE, kept).otherwise(F.col(OUTCOME)))


def keeps_one_conflicting_version(bronze: DataFrame, table: str, parent: Any) -> DataFrame:
    """Conflicting versions in one batch are deduplicated like copies: one of them is kept."""
    conflict = F.array_contains("_reasons", CONFLICT)
    in_batch = Window.partitionBy(KEY, "_batch_id").orderBy(conflict.desc(), "_source_file", *RAW)
    one_kept = _mark(classify(bronze, table, parent), conflict & (F.row_number().over(in_batch) == 1), SUPERSEDED)
    return _repick(_mark(one_kept, F.array_contains("_reasons", CONFLICT), DUPLICATE))


def spelling_makes_a_version(bronze: DataFrame, table: str, parent: Any) -> DataFrame:
    """Versions are compared as raw text, so copies spelled differently (" 1", "2.00") conflict."""
    valid = F.col(OUTCOME) != QUARANTINED
    spellings = F.collect_set(F.when(valid, F.to_json(F.struct(*RAW)))).over(Window.partitionBy(KEY, "_batch_id"))
    return _repick(_mark(classify(bronze, table, parent), valid & (F.size(spellings) > 1), QUARANTINED, (CONFLICT,)))


def quarantined_version_supersedes(bronze: DataFrame, table: str, parent: Any) -> DataFrame:
    """A newer quarantined version of a key (broken, or conflicting) retires the key's silver row."""
    newest = F.max(F.when(F.col(KEY).isNotNull(), F.col("_batch_id"))).over(Window.partitionBy(KEY))
    retired = (F.col(OUTCOME) == SILVER_ROW) & (F.col("_batch_id") < newest)
    return _mark(classify(bronze, table, parent), retired, SUPERSEDED)


def first_reason_only(bronze: DataFrame, table: str, parent: Any) -> DataFrame:
    return classify(bronze, table, parent).withColumn("_reasons", F.slice("_reasons", 1, 1))


BOTH = {OUTCOME_PER_ROW, SILVER_PER_KEY}
MUTANTS: dict[Mutant, set[str]] = {
    every_valid_row_conflicts: BOTH,
    one_silver_row_conflicts: BOTH,
    drops_a_silver_row: {EVERY_ROW_ONCE, *BOTH},
    oldest_batch_wins: BOTH,
    superseded_stays_in_silver: BOTH,
    duplicates_are_kept: BOTH,
    keeps_one_conflicting_version: BOTH,
    spelling_makes_a_version: BOTH,
    quarantined_version_supersedes: BOTH,
    first_reason_only: {OUTCOME_PER_ROW},
}


def test_silver_itself_passes_the_check_on_the_mutants_example(spark: Any) -> None:
    check_classification(EXAMPLE, classified(spark, EXAMPLE))


@pytest.mark.parametrize(("mutant", "caught_by"), MUTANTS.items(), ids=[m.__name__ for m in MUTANTS])
def test_the_properties_reject_a_wrong_silver(spark: Any, mutant: Mutant, caught_by: set[str]) -> None:
    with pytest.raises(AssertionError) as failure:
        check_classification(EXAMPLE, classified(spark, EXAMPLE, classifier=mutant))

    assert {line.split(":")[0] for line in str(failure.value).splitlines()} == caught_by
