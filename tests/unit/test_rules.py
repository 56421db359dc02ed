"""Every silver rule is declared once in lakehouse.rules; the README's table and the declarations agree."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lakehouse.contracts import SILVER, TABLES, Column
from lakehouse.rules import RULES, markdown_table, rule_names, rules_for

ROOT = Path(__file__).resolve().parents[2]


def test_the_readme_rule_table_is_the_declarations() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(r"<!-- rules:[^>]*-->\n(.*?)<!-- /rules -->", readme, flags=re.DOTALL)
    assert match, "README.md has no <!-- rules --> block"
    assert match[1] == markdown_table(), "regenerate it: python -m lakehouse.rules"


@pytest.mark.parametrize("table", TABLES)
def test_each_table_has_every_rule_once_bracketed_by_malformed_and_conflict(table: str) -> None:
    names = rule_names(table)
    assert len(names) == len(set(names))
    assert names[0] == "malformed_line"
    assert names[-1] == "conflicting_duplicate"
    assert {r.table for r in rules_for(table)} == {table}


def test_column_flags_declare_the_column_rules() -> None:
    campaigns = {r.name: r for r in rules_for("campaigns")}
    assert campaigns["negative_budget_daily"].columns == ("budget_daily",)
    assert "invalid_campaign_name" not in campaigns  # free text can only be missing
    assert "missing_objective" not in campaigns
    assert "invalid_objective" in campaigns
    assert campaigns["orphan_advertiser_id"].parent == "advertisers"
    assert {r.kind for r in RULES} == {
        "malformed",
        "missing",
        "invalid",
        "negative",
        "comparison",
        "orphan",
        "conflict",
    }


def test_country_is_an_ordinary_accepted_values_column_with_an_alias() -> None:
    country = SILVER["advertisers"].column("country")
    assert "GB" in country.accepted_values
    assert "UK" not in country.accepted_values
    assert dict(country.aliases) == {"UK": "GB"}
    with pytest.raises(ValueError, match="not accepted"):
        Column("c", accepted_values=("A",), aliases=(("B", "C"),))
    with pytest.raises(ValueError, match="numeric"):
        Column("name", non_negative=True)
