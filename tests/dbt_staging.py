"""The dbt project's ``silver_staging`` macro, rendered with Jinja as dbt renders it, so that tests read the select
each staging model and snapshot compiles to: the macro serves both, and what it selects is checked once."""

from __future__ import annotations

import re
from dataclasses import dataclass

import jinja2

from lakehouse.gold import DBT_PROJECT_DIR

MACROS = DBT_PROJECT_DIR / "macros"
STAGING_MACRO = MACROS / "silver_staging.sql"
LINEAGE_MACRO = MACROS / "silver_lineage_columns.sql"


def staging_call(table: str) -> str:
    """What a staging model is, and what a snapshot's body holds: the macro called for ``table``."""
    return f"{{{{ silver_staging('{table}') }}}}"


@dataclass(frozen=True)
class StagingSelect:
    sql: str  # the select, ``source()`` rendered as ``"<source>"."<table>"``
    sources: tuple[tuple[str, str], ...]  # every source() it called, in order
    refs: int  # ref() calls: a snapshot's select must make none

    @property
    def columns(self) -> list[str]:
        """The names the final CTE selects, in order (``x as y`` gives ``y``)."""
        match = re.search(r"^final as \(\s*select\s*(.*?)\s*from source", self.sql, flags=re.MULTILINE | re.DOTALL)
        assert match, "no final CTE selecting from source"
        return [re.split(r"\s+as\s+", item.strip())[-1] for item in match[1].split(",")]


def staging_select(table: str) -> StagingSelect:
    """Render ``silver_staging(table)`` with the project's lineage macro; ``source`` and ``ref`` are recorded."""
    sources: list[tuple[str, str]] = []
    refs: list[object] = []

    def source(name: str, relation: str) -> str:
        sources.append((name, relation))
        return f'"{name}"."{relation}"'

    def ref(*args: object) -> str:
        refs.append(args)
        return "ref"

    environment = jinja2.Environment(undefined=jinja2.StrictUndefined)
    environment.globals.update(source=source, ref=ref)
    lineage = environment.from_string(LINEAGE_MACRO.read_text()).module.silver_lineage_columns  # type: ignore[attr-defined]
    environment.globals["silver_lineage_columns"] = lineage
    macro = environment.from_string(STAGING_MACRO.read_text()).module.silver_staging  # type: ignore[attr-defined]
    return StagingSelect(str(macro(table)), tuple(sources), len(refs))
