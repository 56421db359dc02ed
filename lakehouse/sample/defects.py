"""Defect catalog of the sample-data generator: each kind of bad (or awkward but valid) landing row, the Silver
rules it breaks, and how it is written as a CSV line.

Silver semantics assumed here, which the manifest predicts exactly: values are trimmed of spaces and an empty
value is null; categorical values match case-insensitively; a row carries every rule it breaks; comparison and
orphan rules apply only when both sides parse and are non-null; a line that does not split into the header's fields
carries ``malformed_line`` alone. Carriers get fresh keys that no child row references, so nothing cascades.
Where each kind lands is planned by :mod:`lakehouse.sample.plan`.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from lakehouse.contracts import Column, source_columns
from lakehouse.rules import RuleKind, rules_for
from lakehouse.sample.lines import Injected, Values
from lakehouse.sample.mutations import (
    ODD_SPELLING,
    Mutation,
    all_of,
    assign,
    choose,
    clicks_over_impressions,
    conversions_over_clicks,
    daily_over_total,
    end_before_start,
    negative,
    pad_all,
)

Placement = Literal["carrier", "replace", "same_file", "next_file"]

DUPLICATE_KINDS = ("exact_duplicate", "normalized_duplicate")

_BLANKS = ("", "   ")
_BAD_INTEGERS = ("12abc", "1,234", "N/A", "7.5")
_BAD_DECIMALS = ("12abc", "1,234.50", "N/A", "12.345", "1e3")
_BAD_DATES = ("2024-02-30", "2024-13-01", "02/09/2024", "2023-02-29")
_BAD_CODES = ("USA", "Germany", "U5")
_BAD_CATEGORIES = ("Unknown", "Radio", "n/a")
# (column, text with an unquoted comma -> one field too many, text with a quote followed by garbage)
_MALFORMED_TEXT = {
    "advertisers": ("advertiser_name", "Acme, Inc", '"Acme" Corp'),
    "campaigns": ("campaign_name", "Spring Sale, Wave 2", '"Spring" Sale'),
    "performance": ("impressions", "12,345", '"12"345'),
}


def _columns(table: str, kind: RuleKind) -> tuple[str, ...]:
    """The columns of ``table`` that a declared rule of ``kind`` watches (missing, invalid, negative)."""
    return tuple(rule.columns[0] for rule in rules_for(table, kind))


def _implied_by_negative(table: str, column: str) -> tuple[str, ...]:
    """A negative value also breaks a comparison whose other side is a valid, non-negative number."""
    return tuple(rule.name for rule in rules_for(table, "comparison") if rule.columns[1] == column)


@dataclass(frozen=True)
class Kind:
    """A defect kind: how it changes a row, where the row goes and the rules Silver must report."""

    name: str
    reasons: tuple[str, ...] = ()
    mutate: Mutation | None = None
    raw: tuple[tuple[str, str], ...] = ()
    too_few: bool = False
    placement: Placement = "carrier"

    def inject(self, table: str, base: Values, rng: random.Random) -> Injected:
        values = dict(base)
        if self.mutate is not None:
            self.mutate(values, rng)
        return Injected(table, self.name, values, self.reasons, self.raw, self.too_few)


def _bad_values(column: Column) -> tuple[str, ...]:
    if column.aliases:  # a coded column (countries): near misses read more like real data than category words
        return _BAD_CODES
    if column.accepted_values:
        return _BAD_CATEGORIES
    if column.type == "date":
        return _BAD_DATES
    return _BAD_DECIMALS if column.type.startswith("decimal") else _BAD_INTEGERS


def _rule_kinds(table: str, orphan_key: Callable[[], str]) -> list[Kind]:
    columns = {c.name: c for c in source_columns(table)}
    if table == "advertisers":
        both = all_of(choose("advertiser_name", _BLANKS), choose("country", _BAD_CODES))
        return [Kind("multiple_defects", ("invalid_country", "missing_advertiser_name"), both)]
    if table == "campaigns":
        three = all_of(choose("campaign_type", ("Radio",)), negative(columns["budget_daily"]), end_before_start)
        return [
            Kind("end_before_start", ("end_before_start",), end_before_start),
            Kind("daily_budget_gt_total", ("daily_budget_gt_total",), daily_over_total),
            Kind("orphan_advertiser_id", ("orphan_advertiser_id",), assign("advertiser_id", orphan_key)),
            Kind("multiple_defects", ("end_before_start", "invalid_campaign_type", "negative_budget_daily"), three),
        ]
    three = all_of(choose("date", ("2024-02-30",)), negative(columns["cost"]), conversions_over_clicks)
    return [
        Kind("clicks_gt_impressions", ("clicks_gt_impressions",), clicks_over_impressions),
        Kind("conversions_gt_clicks", ("conversions_gt_clicks",), conversions_over_clicks),
        Kind("orphan_campaign_id", ("orphan_campaign_id",), assign("campaign_id", orphan_key)),
        Kind("multiple_defects", ("conversions_gt_clicks", "invalid_date", "negative_cost"), three),
    ]


def _malformed_kinds(table: str) -> list[Kind]:
    column, split_text, broken_text = _MALFORMED_TEXT[table]
    reasons = ("malformed_line",)
    return [
        Kind("malformed_too_many_fields", reasons, raw=((column, split_text),)),
        Kind("malformed_too_few_fields", reasons, too_few=True),
        Kind("malformed_broken_quoting", reasons, raw=((column, broken_text),)),
    ]


def carrier_kinds(table: str, orphan_key: Callable[[], str]) -> tuple[Kind, ...]:
    """Kinds written as extra rows with fresh keys; each is quarantined for exactly ``Kind.reasons``.

    Args:
        table: landing table name.
        orphan_key: returns a parent key that exists nowhere (used by the orphan kinds).
    """
    columns = {c.name: c for c in source_columns(table)}
    return (
        *(Kind(f"missing_{n}", (f"missing_{n}",), choose(n, _BLANKS)) for n in _columns(table, "missing")),
        *(
            Kind(f"invalid_{n}", (f"invalid_{n}",), choose(n, _bad_values(columns[n])))
            for n in _columns(table, "invalid")
        ),
        *(
            Kind(f"negative_{n}", (f"negative_{n}", *_implied_by_negative(table, n)), negative(columns[n]))
            for n in _columns(table, "negative")
        ),
        *_rule_kinds(table, orphan_key),
        *_malformed_kinds(table),
    )


def valid_kinds(table: str) -> tuple[Kind, ...]:
    """Kinds applied to real rows that Silver must keep: odd spelling, and copies it must collapse."""
    return (
        Kind("casing_whitespace", mutate=ODD_SPELLING[table], placement="replace"),
        Kind("exact_duplicate", placement="same_file"),
        Kind("normalized_duplicate", mutate=pad_all, placement="next_file"),
    )
