"""Defect plan of the sample-data generator: which injected rows one landing table gets, and in which file."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from lakehouse.sample.defects import Kind, carrier_kinds, valid_kinds
from lakehouse.sample.lines import Injected, Values


@dataclass
class TablePlan:
    """Where a table's injected rows go: carriers by file index, valid kinds by global clean-row index."""

    carriers: dict[int, list[Injected]] = field(default_factory=dict)
    real_rows: dict[int, Kind] = field(default_factory=dict)


def _changed(values: Values) -> Values:
    """A second version of a row: same key, one value changed, still valid."""
    changed = dict(values)
    if "revenue" in changed:
        changed["revenue"] = str(Decimal(changed["revenue"]) + 1)
    elif "status" in changed:
        changed["status"] = "Paused" if changed["status"] != "Paused" else "Active"
    else:
        changed["advertiser_name"] += " Holdings"
    return changed


def plan_table(
    table: str,
    *,
    n_rows: int,
    n_files: int,
    dirty_rate: float,
    rng: random.Random,
    base_row: Callable[[int], Values],
    orphan_key: Callable[[], str],
) -> TablePlan:
    """Choose every injected row of one table: about ``dirty_rate * n_rows`` in all, at least one per kind.

    Args:
        table: landing table name.
        n_rows: clean rows the table holds (indices ``0..n_rows-1`` in write order).
        n_files: landing files of the table (at least 2, so a key can be re-delivered in a later file).
        dirty_rate: share of defective rows; 0 injects nothing.
        rng: the table's defect random stream.
        base_row: a valid row with a fresh key for the file with the given index.
        orphan_key: a parent key that exists nowhere.
    """
    plan = TablePlan({index: [] for index in range(n_files)})
    if dirty_rate == 0:
        return plan
    carriers, valid = carrier_kinds(table, orphan_key), valid_kinds(table)
    per_kind = max(1, round(dirty_rate * n_rows / (len(carriers) + len(valid) + 2)))
    for kind in carriers:
        for _ in range(per_kind):
            index = rng.randrange(n_files)
            plan.carriers[index].append(kind.inject(table, base_row(index), rng))
    for _ in range(per_kind):
        first = rng.randrange(n_files - 1)
        later = rng.randrange(first + 1, n_files)
        original = base_row(first)
        for index, values in ((first, original), (later, _changed(original))):
            plan.carriers[index].append(Injected(table, "conflicting_duplicate", values, ("conflicting_duplicate",)))
        plan.carriers[rng.randrange(n_files)].append(Injected(table, "blank_line", None))
    per_real = min(per_kind, n_rows // len(valid))
    for position, index in enumerate(rng.sample(range(n_rows), per_real * len(valid))):
        plan.real_rows[index] = valid[position % len(valid)]
    return plan
