"""Row mutations of the sample-data generator: each changes one landing row's values in place, from a random stream.

The defect catalog (:mod:`lakehouse.sample.defects`) composes them into defect kinds. A mutation takes the
row's values (column name to text, as written) and the table's defect stream, and must draw from the stream in a
fixed order so the same seed gives the same files.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from datetime import date, timedelta
from decimal import Decimal

from lakehouse.contracts import Column
from lakehouse.sample.lines import Values

Mutation = Callable[[Values, random.Random], None]


def choose(column: str, choices: Sequence[str]) -> Mutation:
    """Set ``column`` to one of ``choices``."""

    def mutate(values: Values, rng: random.Random) -> None:
        values[column] = rng.choice(choices)

    return mutate


def assign(column: str, source: Callable[[], str]) -> Mutation:
    """Set ``column`` to what ``source`` returns (a key that exists nowhere, for orphans)."""

    def mutate(values: Values, rng: random.Random) -> None:
        values[column] = source()

    return mutate


def negative(column: Column) -> Mutation:
    """Set ``column`` below zero, with cents when it is a decimal."""

    def mutate(values: Values, rng: random.Random) -> None:
        cents = f".{rng.randint(0, 99):02d}" if column.type.startswith("decimal") else ""
        values[column.name] = f"-{rng.randint(1, 999)}{cents}"

    return mutate


def all_of(*mutations: Mutation) -> Mutation:
    """Apply ``mutations`` in order."""

    def mutate(values: Values, rng: random.Random) -> None:
        for one in mutations:
            one(values, rng)

    return mutate


def end_before_start(values: Values, rng: random.Random) -> None:
    """A campaign that ends 1 to 30 days before it starts."""
    start = date.fromisoformat(values["start_date"])
    values["end_date"] = (start - timedelta(days=rng.randint(1, 30))).isoformat()


def daily_over_total(values: Values, rng: random.Random) -> None:
    """A campaign whose total budget is half its daily budget."""
    values["budget_total"] = str((Decimal(values["budget_daily"]) / 2).quantize(Decimal("0.01")))


def clicks_over_impressions(values: Values, rng: random.Random) -> None:
    """A day with more clicks than impressions."""
    values["clicks"] = str(int(values["impressions"]) + rng.randint(1, 50))


def conversions_over_clicks(values: Values, rng: random.Random) -> None:
    """A day with more conversions than clicks."""
    values["conversions"] = str(int(values["clicks"]) + rng.randint(1, 5))


def pad_all(values: Values, rng: random.Random) -> None:
    """Surround every value with a space, which Silver trims."""
    for column, value in values.items():
        values[column] = f" {value} "


def _odd_advertiser(values: Values, rng: random.Random) -> None:
    values["industry"] = f"  {rng.choice((str.upper, str.lower))(values['industry'])} "
    values["country"] = " uk "  # a British advertiser as people write it; Silver maps UK to GB


def _odd_campaign(values: Values, rng: random.Random) -> None:
    values["campaign_type"] = f"  {values['campaign_type'].lower()} "
    values["status"] = values["status"].upper()
    values["objective"] = f" {values['objective'].lower()}"


def _odd_performance(values: Values, rng: random.Random) -> None:
    values["date"] = f" {values['date']} "
    values["clicks"] = f"{values['clicks']}  "
    values["cost"] = f" {values['cost']}"


# Per table: valid values as people write them (odd case, stray spaces), which Silver must normalize and keep.
ODD_SPELLING: dict[str, Mutation] = {
    "advertisers": _odd_advertiser,
    "campaigns": _odd_campaign,
    "performance": _odd_performance,
}
