"""Silver's rules, each declared once: name, table, columns, kind and severity. No pyspark here.

Row rules come from the contracts' column declarations (``required`` -> ``missing_<column>``, a typed or
accepted-values column -> ``invalid_<column>``, ``non_negative`` -> ``negative_<column>``) and from the two
tuples below (comparisons between two columns of a row, and foreign keys). Every table also has
``malformed_line`` (the landing line did not parse) and ``conflicting_duplicate`` (one batch holds different
versions of a key). :data:`RULES` lists them all, in a stable order; it is read by the Spark validation
(:mod:`lakehouse.silver.validation`), the Soda check generator (:mod:`lakehouse.quality.checks`), the sample
generator's defect catalog (:mod:`lakehouse.sample.defects`) and the README's rule table (kept equal by a test).

To add a rule: declare it here (or flag the column in :mod:`lakehouse.contracts`), then add its test.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Literal

from lakehouse.contracts import SILVER, TABLES, Column, source_columns

RuleKind = Literal["malformed", "missing", "invalid", "negative", "comparison", "orphan", "conflict"]
Severity = Literal["fail", "warn"]


@dataclass(frozen=True)
class Comparison:
    """Broken when ``left > right`` in one row (both present and valid)."""

    table: str
    name: str
    left: str
    right: str


@dataclass(frozen=True)
class ForeignKey:
    """``column`` must be a key of the final silver ``parent`` table (parents are processed first)."""

    table: str
    column: str
    parent: str

    @property
    def name(self) -> str:
        return f"orphan_{self.column}"


COMPARISONS = (
    Comparison("campaigns", "end_before_start", "start_date", "end_date"),
    Comparison("campaigns", "daily_budget_gt_total", "budget_daily", "budget_total"),
    Comparison("performance", "clicks_gt_impressions", "clicks", "impressions"),
    Comparison("performance", "conversions_gt_clicks", "conversions", "clicks"),
)
FOREIGN_KEYS = (
    ForeignKey("campaigns", "advertiser_id", "advertisers"),
    ForeignKey("performance", "campaign_id", "campaigns"),
)


@dataclass(frozen=True)
class Rule:
    """One quarantine rule of one table. ``severity`` is what the silver gate does when a published row breaks it
    (``fail`` stops the run, ``warn`` reports); a row breaking any rule is quarantined either way."""

    name: str
    table: str
    kind: RuleKind
    columns: tuple[str, ...] = ()
    parent: str | None = None  # the parent table of an orphan rule
    severity: Severity = "fail"

    @property
    def meaning(self) -> str:
        """One line for the docs."""
        if self.kind == "malformed":
            return "the landing line did not parse into the header's fields (the only reason such a row gets)"
        if self.kind == "conflict":
            return "one batch holds different versions of the same key (all of them are quarantined)"
        first, last = f"`{self.columns[0]}`", f"`{self.columns[-1]}`"
        if self.kind == "invalid":
            return f"{first} {_invalid_meaning(SILVER[self.table].column(self.columns[0]))}"
        return {
            "missing": f"{first} is empty",
            "negative": f"{first} is below zero",
            "comparison": f"{first} > {last} (both valid)",
            "orphan": f"{first} is not a key of the final silver `{self.parent}`",
        }[self.kind]


def _invalid_meaning(column: Column) -> str:
    if column.accepted_values:
        aliases = ", ".join(f"{alias} -> {value}" for alias, value in column.aliases)
        listed = ", ".join(column.accepted_values) if len(column.accepted_values) <= 10 else "ISO 3166-1 alpha-2"
        return f"is not one of {listed} (any case{'; ' + aliases if aliases else ''})"
    if column.decimal:
        return f"is not a plain decimal with at most {column.decimal[1]} places that fits {column.type}"
    if column.type == "date":
        return "is not a real date written yyyy-MM-dd"
    return f"is not a plain integer (digits only, no separators) that fits {column.type}"


def can_be_invalid(column: Column) -> bool:
    """Free text can only be missing; typed and accepted-values columns can also be unparseable."""
    return column.type != "string" or bool(column.accepted_values)


def _table_rules(table: str) -> tuple[Rule, ...]:
    rules = [Rule("malformed_line", table, "malformed")]
    for column in source_columns(table):
        if column.required:
            rules.append(Rule(f"missing_{column.name}", table, "missing", (column.name,)))
        if can_be_invalid(column):
            rules.append(Rule(f"invalid_{column.name}", table, "invalid", (column.name,)))
        if column.non_negative:
            rules.append(Rule(f"negative_{column.name}", table, "negative", (column.name,)))
    rules += [Rule(c.name, table, "comparison", (c.left, c.right)) for c in COMPARISONS if c.table == table]
    rules += [Rule(fk.name, table, "orphan", (fk.column,), fk.parent) for fk in FOREIGN_KEYS if fk.table == table]
    rules.append(Rule("conflicting_duplicate", table, "conflict", SILVER[table].key))
    return tuple(rules)


RULES: tuple[Rule, ...] = tuple(rule for table in TABLES for rule in _table_rules(table))


def rules_for(table: str, *kinds: RuleKind) -> tuple[Rule, ...]:
    """The rules of ``table`` (only those of ``kinds`` when given), in declaration order."""
    return tuple(r for r in RULES if r.table == table and (not kinds or r.kind in kinds))


def rule_names(table: str) -> tuple[str, ...]:
    """Every rule that can quarantine a row of ``table``, for docs, Soda and tests."""
    return tuple(r.name for r in rules_for(table))


def foreign_key(table: str) -> ForeignKey | None:
    return next((fk for fk in FOREIGN_KEYS if fk.table == table), None)


def markdown_table() -> str:
    """The README's rule table: one line per rule name, with the tables it applies to."""
    by_name: dict[str, list[Rule]] = {}
    for rule in RULES:
        by_name.setdefault(rule.name, []).append(rule)
    lines = ["| rule | tables | kind | severity | meaning |", "| --- | --- | --- | --- | --- |"]
    for name, rules in by_name.items():
        tables = ", ".join(r.table for r in rules)
        lines.append(f"| `{name}` | {tables} | {rules[0].kind} | {rules[0].severity} | {rules[0].meaning} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # `python -m lakehouse.rules` prints the README's rule table
    sys.stdout.write(markdown_table())
