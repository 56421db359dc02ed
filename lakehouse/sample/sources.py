"""The three landing tables of the sample-data generator as sources: file names, clean rows, carriers, orphan keys.

Advertisers and campaigns land in two parts (three fifths, then the rest), performance one file per ISO week of
2024. Carriers and orphan keys draw keys past every clean row, so no clean row ever references them.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta

from lakehouse.contracts import SOURCE_COLUMNS
from lakehouse.sample.data import (
    WEEKS,
    YEAR_START,
    Row,
    advertiser_row,
    build_campaign,
    carrier_advertiser,
    carrier_campaign,
    carrier_performance,
    delivery_days,
    random_stream,
    week_rows,
)
from lakehouse.sample.lines import Values

ADVERTISERS_PER_SCALE, CAMPAIGNS_PER_SCALE = 360, 3650  # about 15 MB of CSV at scale 1
MIN_ADVERTISERS, MIN_CAMPAIGNS = 10, 20


@dataclass(frozen=True)
class Source:
    """One landing table: its file names, clean rows per file (lazily) and carrier base rows."""

    table: str
    files: tuple[str, ...]
    n_rows: int
    chunks: Callable[[], Iterator[list[Row]]]
    base_row: Callable[[int], Values]
    orphan_key: Callable[[], str]  # a parent key that exists nowhere


def sources(seed: int, scale: float) -> dict[str, Source]:
    """Every landing table's source for ``seed`` and ``scale``; performance rows are drawn only when iterated."""
    n_advertisers = max(MIN_ADVERTISERS, round(ADVERTISERS_PER_SCALE * scale))
    n_campaigns = max(MIN_CAMPAIGNS, round(CAMPAIGNS_PER_SCALE * scale))
    rng = random_stream(seed, "advertisers")
    advertisers = [advertiser_row(rng, i) for i in range(1, n_advertisers + 1)]
    rng = random_stream(seed, "campaigns")
    campaigns = [build_campaign(rng, i, n_advertisers) for i in range(1, n_campaigns + 1)]
    keys = {"advertisers": n_advertisers, "campaigns": n_campaigns, "performance": sum(map(delivery_days, campaigns))}
    counters = {table: itertools.count(n + 1) for table, n in keys.items()}
    carriers = _carrier_factory(random_stream(seed, "carriers"), counters, n_advertisers, n_campaigns)

    def unused_key(parent: str) -> Callable[[], str]:
        # drawn after the parent table's carriers took theirs, so no row ever holds it
        return lambda: str(next(counters[parent]))

    def performance() -> Iterator[list[Row]]:
        perf_rng, first_id = random_stream(seed, "performance"), 1
        for week in range(WEEKS):
            rows = week_rows(perf_rng, week, campaigns, first_id)
            first_id += len(rows)
            yield rows

    return {
        "advertisers": _two_parts("advertisers", advertisers, carriers, _no_parent),
        "campaigns": _two_parts("campaigns", [c.row for c in campaigns], carriers, unused_key("advertisers")),
        "performance": Source(
            "performance",
            tuple(f"performance_{YEAR_START + timedelta(weeks=w)}.csv" for w in range(WEEKS)),
            keys["performance"],
            performance,
            lambda index: carriers("performance", index),
            unused_key("campaigns"),
        ),
    }


def _no_parent() -> str:
    raise LookupError("advertisers reference no parent table")


def _two_parts(
    table: str, rows: list[Row], carriers: Callable[[str, int], Values], orphan_key: Callable[[], str]
) -> Source:
    cut = (len(rows) * 3) // 5
    return Source(
        table,
        (f"{table}_part1.csv", f"{table}_part2.csv"),
        len(rows),
        lambda: iter((rows[:cut], rows[cut:])),
        lambda index: carriers(table, index),
        orphan_key,
    )


def _carrier_factory(
    rng: random.Random, counters: Mapping[str, Iterator[int]], n_advertisers: int, n_campaigns: int
) -> Callable[[str, int], Values]:
    """Valid rows with fresh keys (nothing references them), in the week of the target file for performance."""
    factories: dict[str, Callable[[int, int], Row]] = {
        "advertisers": lambda key, index: carrier_advertiser(rng, key),
        "campaigns": lambda key, index: carrier_campaign(rng, key, n_advertisers),
        "performance": lambda key, week: carrier_performance(rng, key, week, n_campaigns),
    }

    def base_row(table: str, index: int) -> Values:
        row = factories[table](next(counters[table]), index)
        return dict(zip(SOURCE_COLUMNS[table], row, strict=True))

    return base_row
