"""A small, hand-made silver dataset for the gold layer, and the helpers that load it into PostgreSQL.

Four advertisers (one without campaigns), seven campaigns covering every type and status (one Draft without
delivery, one open-ended without a total budget) and two weeks of performance, including days that make KPI
denominators zero: a paused Display campaign with no impressions, Social days bought by the thousand with no
clicks, and a Video campaign whose clicks never converted (cost without conversions or revenue).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from psycopg2 import sql

from lakehouse.adapters.warehouse import connect, create_table_sql
from lakehouse.contracts import SILVER
from lakehouse.settings import PostgresSettings

Row = dict[str, Any]

FIRST_BATCH = ("batch-0001", dt.datetime(2024, 3, 15, 6, 0, tzinfo=dt.UTC))
FIRST_DAY = dt.date(2024, 3, 1)
DAYS = 14
CENT = Decimal("0.01")


def _parse(table: str, text: str) -> list[Row]:
    """Rows of a ``|``-separated block, one cell per business column in contract order; an empty cell is NULL."""
    contract = SILVER[table]
    names = [name for name in contract.column_names if not name.startswith("_")]
    parsers: dict[str, Any] = {"int": int, "bigint": int, "date": dt.date.fromisoformat, "string": str}
    rows = []
    for line in text.strip().splitlines():
        cells = [cell.strip() for cell in line.split("|")]
        row: Row = {}
        for name, cell in zip(names, cells, strict=True):
            kind = contract.column(name).type
            row[name] = None if not cell else Decimal(cell) if kind.startswith("decimal") else parsers[kind](cell)
        rows.append(row)
    return rows


ADVERTISERS = _parse(
    "advertisers",
    """
1 | Northwind Outfitters | Retail             | US | Dana Whitfield
2 | Bluepeak Bank        | Financial Services | GB | Omar Haddad
3 | Lumen Health         | Healthcare         | DE |
4 | Orbit Games          | Entertainment      | CA | Mei Chen
    """,
)
CAMPAIGNS = _parse(
    "campaigns",
    """
101 | 1 | Spring Search - Brand    | Search   | Active    | Conversion    | 2024-03-01 | 2024-03-31 | 100.00 | 3000.00
102 | 1 | Always-on Shopping Feed  | Shopping | Active    | Sales         | 2024-03-01 |            |  50.00 |
103 | 2 | Savings Display Q1       | Display  | Paused    | Awareness     | 2024-02-15 | 2024-03-15 |  80.00 | 2400.00
104 | 2 | Mortgage Explainer Video | Video    | Completed | Consideration | 2024-02-01 | 2024-03-05 | 200.00 | 5000.00
105 | 3 | Clinic Launch Social     | Social   | Draft     |               | 2024-04-01 | 2024-04-30 |  60.00 | 1800.00
106 | 3 | Flu Shot Search Burst    | Search   | Active    | Leads         | 2024-03-04 | 2024-03-10 |  20.00 |  140.00
107 | 1 | Trail Running Social     | Social   | Active    | Traffic       | 2024-03-01 | 2024-03-20 |  40.00 |  800.00
    """,
)

# campaign: (days delivered as offsets from FIRST_DAY, impressions, clicks per mille, conversions per cent
#            of clicks, cost per click or None when bought per mille, revenue per conversion)
_DELIVERY: dict[int, tuple[range, int, int, int, Decimal | None, Decimal]] = {
    101: (range(DAYS), 4200, 52, 9, Decimal("0.45"), Decimal("38.50")),
    102: (range(DAYS), 2600, 31, 12, Decimal("0.62"), Decimal("54.90")),
    103: (range(DAYS), 9100, 6, 4, Decimal("1.35"), Decimal("120.00")),
    104: (range(5), 15300, 4, 1, Decimal("2.10"), Decimal("95.00")),
    106: (range(3, 10), 900, 61, 15, Decimal("0.55"), Decimal("22.00")),
    107: (range(DAYS), 6400, 9, 7, None, Decimal("31.75")),
}
_PAUSED_FROM = 8  # campaign 103 delivers nothing from 2024-03-09: zero impressions, clicks and cost
_SOCIAL_CPM = Decimal("6.00")


def _performance() -> list[Row]:
    rows = []
    for campaign_id, (days, impressions, ctr_mille, cvr_pct, cpc, value) in _DELIVERY.items():
        for day in days:
            wobble = 100 + (day * 7 + campaign_id) % 9 * 5 - 20  # a fixed weekly-ish ripple, 80 %..120 %
            shown = 0 if campaign_id == 103 and day >= _PAUSED_FROM else impressions * wobble // 100
            clicks = shown * ctr_mille // 1000 if (campaign_id != 107 or day % 3) else 0
            conversions = clicks * cvr_pct // 100
            if cpc is None:
                cost = (Decimal(shown) * _SOCIAL_CPM / 1000).quantize(CENT)
            else:
                cost = (clicks * cpc).quantize(CENT)
            rows.append(
                {
                    "performance_id": campaign_id * 1000 + day,
                    "campaign_id": campaign_id,
                    "date": FIRST_DAY + dt.timedelta(days=day),
                    "impressions": shown,
                    "clicks": clicks,
                    "conversions": conversions,
                    "cost": cost,
                    "revenue": (conversions * value).quantize(CENT),
                }
            )
    return rows


PERFORMANCE: list[Row] = _performance()
SILVER_ROWS: dict[str, list[Row]] = {
    "advertisers": ADVERTISERS,
    "campaigns": CAMPAIGNS,
    "performance": PERFORMANCE,
}


def create_silver(pg: PostgresSettings, batch: tuple[str, dt.datetime] = FIRST_BATCH) -> None:
    """Create ``silver.*`` from the contracts and insert :data:`SILVER_ROWS`, all delivered by ``batch``."""
    batch_id, ingested_at = batch
    lineage = {"_batch_id": batch_id, "_ingestion_timestamp": ingested_at, "_silver_processed_at": _now()}
    with connect(pg) as conn, conn.cursor() as cur:
        cur.execute("create schema if not exists silver")
        for table, rows in SILVER_ROWS.items():
            contract = SILVER[table]
            cur.execute(create_table_sql("silver", contract))
            insert = sql.SQL("insert into {} ({}) values ({})").format(
                sql.Identifier("silver", table),
                sql.SQL(", ").join(sql.Identifier(c) for c in contract.column_names),
                sql.SQL(", ").join(sql.Placeholder(c) for c in contract.column_names),
            )
            cur.executemany(insert, [row | lineage | {"_source_file": f"{table}.csv"} for row in rows])
    conn.close()


def rebuild_silver(pg: PostgresSettings) -> None:
    """Restamp ``_silver_processed_at`` on every row, as the silver layer's full rebuild does on every run."""
    with connect(pg) as conn, conn.cursor() as cur:
        for table in SILVER:
            cur.execute(
                sql.SQL("update {} set _silver_processed_at = %s").format(sql.Identifier("silver", table)), (_now(),)
            )
    conn.close()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# ------------------------------------------------------------------------------------------------------------
# An independent oracle for the analytics marts: plain Python over the silver rows, sharing nothing with the
# dbt models or macros (only the pacing thresholds, read from dbt_project.yml where the project keeps them).
# ------------------------------------------------------------------------------------------------------------
MEASURES = ("impressions", "clicks", "conversions", "cost", "revenue")
Key = tuple[Any, ...]


def _ratio(numerator: Decimal | int, denominator: Decimal | int) -> Decimal | None:
    return None if denominator == 0 else Decimal(numerator) / Decimal(denominator)


def _totals_and_kpis(rows: list[Row]) -> Row:
    t: Row = {m: sum((r[m] for r in rows), Decimal(0) if m in ("cost", "revenue") else 0) for m in MEASURES}
    t["profit"] = t["revenue"] - t["cost"]
    return t | {
        "ctr": _ratio(t["clicks"], t["impressions"]),
        "cvr": _ratio(t["conversions"], t["clicks"]),
        "cpc": _ratio(t["cost"], t["clicks"]),
        "cpm": _ratio(1000 * t["cost"], t["impressions"]),
        "cpa": _ratio(t["cost"], t["conversions"]),
        "roas": _ratio(t["revenue"], t["cost"]),
        "roi": _ratio(t["revenue"] - t["cost"], t["cost"]),
    }


def _group(rows: list[Row], key: Any) -> dict[Any, list[Row]]:
    groups: dict[Any, list[Row]] = {}
    for row in rows:
        groups.setdefault(key(row), []).append(row)
    return groups


def expected_marts(silver: dict[str, list[Row]], thresholds: tuple[Decimal, Decimal]) -> dict[str, dict[Key, Row]]:
    """Every analytics mart's rows by key, from ``silver`` rows as selected from ``silver.<table>``."""
    campaigns = {c["campaign_id"]: c for c in silver["campaigns"]}
    performance = silver["performance"]
    by_campaign = _group(performance, lambda r: r["campaign_id"])
    summary: dict[Key, Row] = {}
    for campaign_id, campaign in campaigns.items():
        rows = by_campaign.get(campaign_id, [])
        dates = [r["date"] for r in rows]
        summary[(campaign_id,)] = _totals_and_kpis(rows) | {
            "advertiser_id": campaign["advertiser_id"],
            "performance_days": len(rows),
            "first_performance_date": min(dates, default=None),
            "last_performance_date": max(dates, default=None),
        }
    by_advertiser = _group(performance, lambda r: campaigns[r["campaign_id"]]["advertiser_id"])
    advertisers = {
        (a["advertiser_id"],): _totals_and_kpis(by_advertiser.get(a["advertiser_id"], []))
        | {
            "campaign_count": sum(c["advertiser_id"] == a["advertiser_id"] for c in campaigns.values()),
            "active_campaign_count": sum(
                c["advertiser_id"] == a["advertiser_id"] and c["status"] == "Active" for c in campaigns.values()
            ),
        }
        for a in silver["advertisers"]
    }
    daily = {
        key: _totals_and_kpis(rows) | {"campaign_count": len({r["campaign_id"] for r in rows})}
        for key, rows in _group(
            performance, lambda r: (r["date"], campaigns[r["campaign_id"]]["campaign_type"])
        ).items()
    }
    as_of = max(r["date"] for r in performance)
    pacing = {
        (c["campaign_id"],): _pacing(c, by_campaign.get(c["campaign_id"], []), as_of, thresholds)
        for c in campaigns.values()
    }
    return {
        "campaign_performance_summary": summary,
        "advertiser_performance": advertisers,
        "daily_channel_performance": daily,
        "budget_pacing": pacing,
    }


def _pacing(campaign: Row, rows: list[Row], as_of: dt.date, thresholds: tuple[Decimal, Decimal]) -> Row:
    spend = sum((r["cost"] for r in rows), Decimal(0))
    start, end, budget = campaign["start_date"], campaign["end_date"], campaign["budget_total"]
    flight = (end - start).days + 1 if end else None
    elapsed = max(0, (as_of - start).days + 1 if flight is None else min((as_of - start).days + 1, flight))
    spent_share = _ratio(spend, budget) if budget is not None else None
    elapsed_share = _ratio(elapsed, flight) if flight is not None else None
    index = _ratio(spent_share, elapsed_share) if spent_share is not None and elapsed_share is not None else None
    under, over = thresholds
    status = None if index is None else "under" if index < under else "over" if index > over else "on_track"
    return {
        "as_of_date": as_of,
        "flight_length_days": flight,
        "elapsed_days": elapsed,
        "spend_to_date": spend,
        "budget_remaining": budget - spend if budget is not None else None,
        "budget_spent_share": spent_share,
        "flight_elapsed_share": elapsed_share,
        "pacing_index": index,
        "pacing_status": status,
    }
