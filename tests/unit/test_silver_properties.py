"""Hypothesis properties of the Silver layer, checked row by row against an independent pure-Python oracle.

The oracle restates the README without importing ``lakehouse.rules``: normalization and every row rule, then
dedup. Identical versions of a key in one batch collapse to one (``duplicate``); different valid versions in one
batch are all quarantined (``conflicting_duplicate``); a key's silver row is its version from the latest batch
that holds exactly one valid version, and that version in older batches is ``superseded``.
:func:`check_classification` asserts three properties and names each one a classification breaks:

* ``every bronze row once``: nothing is dropped or invented;
* ``each row's outcome``: outcome and reasons equal the oracle's, row by row. Copies of one version in one batch
  are interchangeable (which copy is kept is unspecified), so they are compared as a group; that the choice does
  not depend on row order or partitioning is asserted separately;
* ``one silver row per key``: exactly one for each key the oracle gives one, with its values and batch; none
  for the others.

Every generated bronze holds a superseded version with duplicate copies of the winner, an older valid version
that outlives a batch of conflicting versions, and a newer broken version that does not replace an older valid
one, around arbitrary rows. The test asserts this shape so it cannot pass vacuously;
``tests/unit/test_silver_mutants.py`` shows wrong silvers fail the check.

Seeds come from the Hypothesis profile that ``tests/conftest.py`` loads: ``ci`` (derandomized, when ``CI`` is
set) or ``dev`` (random); ``HYPOTHESIS_PROFILE`` overrides both. Each example costs two Spark jobs, so this test
sets its own small example count.
"""

from __future__ import annotations

import datetime as dt
import random
import re
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from lakehouse.contracts import SOURCE_COLUMNS, bronze_table
from lakehouse.silver.transforms import DUPLICATE, QUARANTINED, SILVER_ROW, SUPERSEDED, classify

COLUMNS = SOURCE_COLUMNS["performance"]
LINEAGE = ("_corrupt_record", "_batch_id", "_source_file")
PARENT_CAMPAIGNS = (10, 11)
BATCHES = ("20240208T090000Z-5e1f0c2a", "20240209T101500Z-0b7d3e91", "20240210T231000Z-04c8f6d2")  # time order
FILES = ("performance_a.csv", "performance_b.csv")
CONFLICT = "conflicting_duplicate"
# The properties check_classification asserts, by the name its failure message gives them.
EVERY_ROW_ONCE = "every bronze row once"
OUTCOME_PER_ROW = "each row's outcome"
SILVER_PER_KEY = "one silver row per key"
_INT = re.compile(r"^-?[0-9]+$")
_DEC = re.compile(r"^-?[0-9]+(\.[0-9]{1,2})?$")
_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
LIMITS = {"int": 2**31, "bigint": 2**63}
TYPES = dict(zip(COLUMNS, ("bigint", "int", "date", "bigint", "bigint", "bigint", "decimal", "decimal"), strict=True))

Row = dict[str, Any]
Outcome = tuple[str, tuple[str, ...]]
Classifier = Callable[[Any, str, Any], Any]


def parse(kind: str, text: str) -> Any:
    """The spec of normalization, written independently of lakehouse.rules; None = unparseable."""
    if kind in LIMITS:
        value = int(text) if _INT.match(text) else None
        return value if value is not None and -LIMITS[kind] <= value < LIMITS[kind] else None
    if kind == "decimal":
        return Decimal(text) if _DEC.match(text) and len(text.lstrip("-").split(".")[0]) <= 10 else None
    if _DATE.match(text):
        try:
            return dt.date.fromisoformat(text)
        except ValueError:
            return None
    return None


def judge(row: Row) -> tuple[tuple[Any, ...], set[str]]:
    """A bronze row's typed values (its version) and every row rule it breaks."""
    if row["_corrupt_record"] is not None:
        return (), {"malformed_line"}
    broken: set[str] = set()
    value: dict[str, Any] = {}
    for column, kind in TYPES.items():
        text = (row[column] or "").strip(" ")
        value[column] = parse(kind, text) if text else None
        if not text:
            broken.add(f"missing_{column}")
        elif value[column] is None:
            broken.add(f"invalid_{column}")
        elif column not in ("performance_id", "campaign_id", "date") and value[column] < 0:
            broken.add(f"negative_{column}")
    pairs = {"clicks_gt_impressions": ("clicks", "impressions"), "conversions_gt_clicks": ("conversions", "clicks")}
    for rule, (left, right) in pairs.items():
        if value[left] is not None and value[right] is not None and value[left] > value[right]:
            broken.add(rule)
    if value["campaign_id"] is not None and value["campaign_id"] not in PARENT_CAMPAIGNS:
        broken.add("orphan_campaign_id")
    return tuple(value.values()), broken


@dataclass(frozen=True)
class Expected:
    """The oracle's verdict: each row's outcome, each silver key's (version, batch), and the conflicting cells."""

    outcomes: list[Outcome]
    silver: dict[int, tuple[tuple[Any, ...], str]]
    conflicts: set[tuple[int, str]]


def expected(rows: list[Row]) -> Expected:
    """The oracle: every row rule, then dedup by key and batch; batch ids sort by time."""
    judged = [judge(r) for r in rows]
    outcomes: list[Outcome] = [(QUARANTINED, tuple(sorted(broken))) for _, broken in judged]
    cells: dict[tuple[int, str], list[int]] = defaultdict(list)  # (key, batch) -> its valid rows
    for i, (version, broken) in enumerate(judged):
        if not broken:
            cells[version[0], rows[i]["_batch_id"]].append(i)
    conflicts = {cell for cell, members in cells.items() if len({judged[i][0] for i in members}) > 1}
    latest: dict[int, str] = {}
    for key, batch in cells.keys() - conflicts:
        latest[key] = max(latest.get(key, batch), batch)
    silver = {}
    for (key, batch), members in cells.items():
        if (key, batch) in conflicts:
            for i in members:
                outcomes[i] = (QUARANTINED, (CONFLICT,))
            continue
        kept, *copies = members
        outcomes[kept] = (SILVER_ROW if batch == latest[key] else SUPERSEDED, ())
        for i in copies:
            outcomes[i] = (DUPLICATE, ())
        if batch == latest[key]:
            silver[key] = (judged[kept][0], batch)
    return Expected(outcomes, silver, conflicts)


def _signature(row: Row) -> tuple[Any, ...]:
    """All a row's outcome may depend on: a valid row's batch and version; any other row's raw text and lineage."""
    version, broken = judge(row)
    return ("version", row["_batch_id"], version) if not broken else ("raw", *(row[c] for c in (*COLUMNS, *LINEAGE)))


def check_classification(rows: list[Row], got: list[Row]) -> None:
    """Assert that ``got`` (classified rows, see :func:`classified`) is the oracle's verdict on bronze ``rows``.

    Raises:
        AssertionError: naming every property ``got`` breaks, with the offending rows or keys.
    """
    want = expected(rows)
    broken: dict[str, str] = {}
    if len(got) != len(rows):
        broken[EVERY_ROW_ONCE] = f"{len(rows)} bronze rows, {len(got)} classified"
    want_rows = Counter(zip(map(_signature, rows), want.outcomes, strict=True))
    got_rows = Counter((_signature(r), (r["_outcome"], tuple(sorted(r["_reasons"])))) for r in got)
    if got_rows != want_rows:
        broken[OUTCOME_PER_ROW] = f"missing {dict(want_rows - got_rows)}, unexpected {dict(got_rows - want_rows)}"
    silver: dict[int, list[tuple[tuple[Any, ...], str]]] = defaultdict(list)
    for r in got:
        if r["_outcome"] == SILVER_ROW:
            silver[r["_typed"][0]].append((r["_typed"], r["_batch_id"]))
    want_silver = {key: [value] for key, value in want.silver.items()}
    if silver != want_silver:
        wrong = {key for key in silver.keys() | want_silver.keys() if silver.get(key) != want_silver.get(key)}
        broken[SILVER_PER_KEY] = "; ".join(
            f"key {key}: expected {want_silver.get(key, [])}, got {silver.get(key, [])}" for key in sorted(wrong)
        )
    if broken:
        raise AssertionError("\n".join(f"{name}: {detail}" for name, detail in broken.items()))


def classified(spark: Any, rows: list[Row], *, partitions: int = 1, classifier: Classifier = classify) -> list[Row]:
    """``rows`` as a bronze frame through ``classifier`` (silver's own unless a test swaps it), collected."""
    data = []
    for r in rows:
        at = dt.datetime.strptime(r["_batch_id"][:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
        data.append((*(r[c] for c in COLUMNS), r["_corrupt_record"], at, r["_batch_id"], r["_source_file"], at.date()))
    bronze = spark.createDataFrame(data, bronze_table("performance").spark_schema())
    bronze = bronze.coalesce(1) if partitions == 1 else bronze.repartition(partitions)
    parent = spark.createDataFrame([(c,) for c in PARENT_CAMPAIGNS], "campaign_id int")
    return [
        {c: r[c] for c in (*COLUMNS, *LINEAGE)}
        | {"_outcome": r["_outcome"], "_reasons": tuple(r["_reasons"]), "_typed": tuple(r["_typed"])}
        for r in classifier(bronze, "performance", parent).collect()
    ]


CHOICES = {  # canonical valid values: every combination is a valid row
    "campaign_id": ("10", "11"),
    "date": ("2024-02-09", "2024-02-29"),
    "impressions": ("100", "250"),
    "clicks": ("5", "50"),
    "conversions": ("0", "5"),
    "cost": ("1.50", "0", "2"),
    "revenue": ("3.00", "10"),
}
ALWAYS_BROKEN = ("", "   ", None, "N/A", "1,000", "12abc", "9223372036854775808")  # no column accepts these
SOMETIMES_BROKEN = ("-3", " 7 ", "12", "2023-02-29", "2024/02/09", "12.345", "1e3", "-0.01", "-0")
versions = st.fixed_dictionaries({column: st.sampled_from(values) for column, values in CHOICES.items()})


def spellings(column: str, text: str) -> st.SearchStrategy[str]:
    """Ways to write one value that all normalize to it: padding, a leading zero, more or fewer decimals."""
    forms = [text, f" {text}", f"{text}  "]
    if TYPES[column] in LIMITS:
        forms.append(f"0{text}")
    if TYPES[column] == "decimal":
        forms += [f"{Decimal(text):.2f}", f"{Decimal(text).normalize():f}"]
    return st.sampled_from(forms)


@st.composite
def valid_row(draw: st.DrawFn, key: str, version: dict[str, str], batch: str) -> Row:
    values = {column: draw(spellings(column, text)) for column, text in (("performance_id", key), *version.items())}
    return values | {"_corrupt_record": None, "_batch_id": batch, "_source_file": draw(st.sampled_from(FILES))}


@st.composite
def broken_row(
    draw: st.DrawFn,
    key: str,
    version: dict[str, str],
    batch: str,
    *,
    columns: tuple[str, ...] = COLUMNS[1:],
    junk: tuple[str | None, ...] = ALWAYS_BROKEN,
) -> Row:
    """A row of ``key`` with one to three of ``columns`` replaced by ``junk`` (by default: surely broken)."""
    row = draw(valid_row(key, version, batch))
    for column in draw(st.lists(st.sampled_from(columns), min_size=1, max_size=3, unique=True)):
        row[column] = draw(st.sampled_from(junk))
    return row


@st.composite
def any_row(draw: st.DrawFn, key: str, batch: str, pool: tuple[dict[str, str], ...]) -> Row:
    """Mostly a valid row of a version from ``pool``; else one broken anyhow, or not at all (the oracle decides)."""
    version = draw(st.sampled_from(pool))
    if draw(st.integers(0, 2)) < 2:  # two rows in three are valid
        return draw(valid_row(key, version, batch))
    return draw(broken_row(key, version, batch, columns=COLUMNS, junk=ALWAYS_BROKEN + SOMETIMES_BROKEN))


@st.composite
def unkeyed_row(draw: st.DrawFn, pool: tuple[dict[str, str], ...]) -> Row:
    """A malformed line, or a row whose key is missing or unparseable."""
    row = draw(valid_row("1", draw(st.sampled_from(pool)), draw(st.sampled_from(BATCHES))))
    if draw(st.booleans()):
        return row | dict.fromkeys(COLUMNS) | {"_corrupt_record": draw(st.sampled_from(("1,2,3", '"open quote')))}
    return row | {"performance_id": draw(st.sampled_from((None, "", "x", "1.5", "1,000")))}


@st.composite
def bronze_rows(draw: st.DrawFn) -> list[Row]:
    """Bronze performance rows, in any order: three stories on keys of their own, arbitrary rows around them."""
    keys = draw(st.permutations(("1", "2", "3", "4", "5", "6")))
    a, b, c = draw(
        st.lists(versions, min_size=3, max_size=3, unique_by=lambda v: tuple(v[column] for column in CHOICES))
    )
    older, newer = sorted(draw(st.lists(st.sampled_from(BATCHES), min_size=2, max_size=2, unique=True)))
    rows = [
        # a superseded version, then two or three copies of the winner, each spelled independently
        draw(valid_row(keys[0], a, older)),
        *draw(st.lists(valid_row(keys[0], draw(st.sampled_from((b, a))), newer), min_size=2, max_size=3)),
        # an older valid version outlives a newer batch of conflicting versions
        draw(valid_row(keys[1], a, older)),
        draw(valid_row(keys[1], b, newer)),
        draw(valid_row(keys[1], c, newer)),
        # a newer broken version does not replace an older valid one
        draw(valid_row(keys[2], c, older)),
        draw(broken_row(keys[2], a, newer)),
    ]
    for key in keys[3:]:
        for batch in BATCHES:
            rows += draw(st.lists(any_row(key, batch, (a, b, c)), max_size=3))
    rows += draw(st.lists(unkeyed_row((a, b, c)), max_size=2))
    return draw(st.permutations(rows))


def assert_not_vacuous(rows: list[Row]) -> None:
    """The example holds every outcome, an older version outliving a conflict, and a fair share of valid rows."""
    want = expected(rows)
    kinds = Counter(
        CONFLICT if reasons == (CONFLICT,) else "broken" if reasons else outcome for outcome, reasons in want.outcomes
    )
    for kind in (SILVER_ROW, DUPLICATE, SUPERSEDED, CONFLICT, "broken"):
        event(f"{kind} rows: {kinds[kind] if kinds[kind] < 5 else '5+'}")
        assert kinds[kind] > 0, f"the example has no {kind} row"
    valid = len(rows) - kinds["broken"]
    event(f"valid rows: {25 * (4 * valid // len(rows))}%+")
    assert valid >= len(rows) / 6, f"only {valid} of {len(rows)} rows are valid"
    assert any(key == k and batch < b for key, (_, batch) in want.silver.items() for k, b in want.conflicts), (
        "no older valid version outlives a conflict"
    )


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(rows=bronze_rows(), rng=st.randoms(use_true_random=False))
def test_silver_is_the_oracles_classification_in_any_row_order(spark: Any, rows: list[Row], rng: random.Random) -> None:
    assert_not_vacuous(rows)
    got = classified(spark, rows)

    check_classification(rows, got)
    # Which copy of a version is kept, and everything else, does not depend on row order or partitioning.
    shuffled = classified(spark, rng.sample(rows, len(rows)), partitions=3)
    assert sorted(shuffled, key=repr) == sorted(got, key=repr)
