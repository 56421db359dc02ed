"""Incremental silver equals a full rebuild, row for row, after every batch, in Delta and in PostgreSQL.

Hypothesis draws sequences of small batches from tiny key and value domains, so re-deliveries, conflicting
versions in one batch, invalid newer versions, unparseable keys, orphans whose parent arrives later and parents
that turn invalid (their children become orphans) are all frequent. Pipeline A ingests each batch and updates
silver incrementally; pipeline B reads the same bronze (its lake's bronze is A's) and rebuilds silver from all
history (``--full-refresh``) into its own lake and database. After every batch, every silver and quarantine table
of A equals B's (all columns but ``_silver_processed_at``, the time of the run that wrote the row) in both stores,
and so does the cumulative reconciliation in ``ops.reconciliation``.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from lakehouse.adapters import lake
from lakehouse.bronze.landing import discover
from lakehouse.contracts import SILVER, TABLES
from lakehouse.settings import PostgresSettings, load_settings
from lakehouse.steps import run_layers
from tests.databases import fresh_database
from tests.stores import lake_rows, reconciliation, warehouse_rows

pytestmark = pytest.mark.integration
START = dt.datetime(2024, 3, 1, 12, tzinfo=dt.UTC)
HEADERS = {
    "advertisers": "advertiser_id,advertiser_name,industry,country,account_manager",
    "campaigns": "campaign_id,advertiser_id,campaign_name,campaign_type,status,objective,start_date,end_date,"
    "budget_daily,budget_total",
    "performance": "performance_id,campaign_id,date,impressions,clicks,conversions,cost,revenue",
}
# Small domains: keys collide across batches and inside one; "x" and "" are unparseable keys; advertiser 4 and
# campaign 13 are never delivered (orphans); Narnia, a negative budget or negative impressions make a row invalid.
ROWS = {
    "advertisers": st.builds(
        lambda key, name, country: f"{key},{name},Retail,{country},",
        st.sampled_from(["1", "2", "3", "x"]),
        st.sampled_from(["Acme", "Bolt"]),
        st.sampled_from(["US", "US", "Narnia"]),
    ),
    "campaigns": st.builds(
        lambda key, parent, budget: f"{key},{parent},C,Search,Active,Sales,2024-01-01,2024-01-31,{budget},310.00",
        st.sampled_from(["10", "11", "12", ""]),
        st.sampled_from(["1", "2", "3", "4", ""]),
        st.sampled_from(["10.00", "12.00", "-1.00"]),
    ),
    "performance": st.builds(
        lambda key, parent, impressions: f"{key},{parent},2024-01-02,{impressions},20,2,11.50,80.00",
        st.sampled_from(["100", "101", "102", "y"]),
        st.sampled_from(["10", "11", "12", "13", "zz"]),
        st.sampled_from(["1000", "900", "-5"]),
    ),
}
BATCH = st.fixed_dictionaries({table: st.lists(rows, max_size=4) for table, rows in ROWS.items()})
# A hand-picked sequence that exercises every case at least once, whatever Hypothesis draws.
STORY = [
    {  # campaign 10's advertiser 1 is invalid: an orphan; campaign 11 in conflict with itself; 101 an orphan
        "advertisers": ["1,Acme,Retail,Narnia,", "2,Bolt,Retail,US,", "x,Bad,Retail,US,"],
        "campaigns": [
            "10,1,C,Search,Active,Sales,2024-01-01,2024-01-31,10.00,310.00",
            "11,2,C,Search,Active,Sales,2024-01-01,2024-01-31,10.00,310.00",
            "11,2,C,Search,Active,Sales,2024-01-01,2024-01-31,12.00,310.00",
            ",1,C,Search,Active,Sales,2024-01-01,2024-01-31,10.00,310.00",
        ],
        "performance": ["100,10,2024-01-02,1000,20,2,11.50,80.00", "101,12,2024-01-02,900,20,2,11.50,80.00"],
    },
    {  # advertiser 1 becomes valid (campaign 10 and the keyless campaign lose their orphan rule), 12 arrives
        "advertisers": ["1,Acme,Retail,US,"],
        "campaigns": ["12,2,C,Search,Active,Sales,2024-01-01,2024-01-31,10.00,310.00"],
        "performance": ["100,10,2024-01-02,1000,20,2,11.50,80.00", "y,12,2024-01-02,5,20,2,11.50,80.00"],
    },
    {  # advertiser 2 turns invalid: 11 and 12 become orphans, then their performance rows do too
        "advertisers": ["2,Bolt,Retail,Narnia,"],
        "campaigns": ["10,1,C,Search,Active,Sales,2024-01-01,2024-01-31,-1.00,310.00"],
        "performance": ["102,11,2024-01-02,-5,20,2,11.50,80.00"],
    },
]

# Batches that leave tables out: a table with no new rows is re-classified only when its parent's keys came or
# went. Advertiser 1 turning valid brings campaign 10 into silver, and performance 100 with it, though neither
# table has a new row; then a batch of performance alone; then one of campaigns alone (performance 101's parent);
# then a new version of advertiser 2 that keeps every advertiser key (campaigns and performance are left alone).
PARTIAL = [
    STORY[0],
    {"advertisers": ["1,Acme,Retail,US,"]},
    {"performance": ["102,10,2024-01-02,900,20,2,11.50,80.00"]},
    {"campaigns": ["12,2,C,Search,Active,Sales,2024-01-01,2024-01-31,10.00,310.00"]},
    {"advertisers": ["2,Acme,Retail,US,"]},
]

# A key with earlier rows of two parents: campaign 10's newer version names advertiser 1, invalid, so it is an
# orphan and the older one (advertiser 2) stays silver. Advertiser 1 then turns valid in a batch without campaigns:
# the newer version, found through its parent, now wins, and the older one, found only through its key, is
# superseded. A run that re-classified the first without the second would not reconcile.
TWO_PARENTS = [
    {
        "advertisers": ["1,Acme,Retail,Narnia,", "2,Bolt,Retail,US,"],
        "campaigns": ["10,2,C,Search,Active,Sales,2024-01-01,2024-01-31,10.00,310.00"],
    },
    {"campaigns": ["10,1,C,Search,Active,Sales,2024-01-01,2024-01-31,12.00,310.00"]},
    {"advertisers": ["1,Acme,Retail,US,"]},
]


@settings(
    max_examples=3,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@example(batches=STORY)
@example(batches=PARTIAL)
@example(batches=TWO_PARENTS)
@given(batches=st.lists(BATCH, min_size=1, max_size=3))
def test_incremental_silver_equals_a_full_rebuild_after_every_batch(
    batches: list[dict[str, list[str]]], spark: Any, pg_service: PostgresSettings
) -> None:
    with (
        tempfile.TemporaryDirectory(prefix="incremental-") as tmp,
        fresh_database(pg_service) as pg_a,
        fresh_database(pg_service) as pg_b,
    ):
        root = Path(tmp)
        incremental = load_settings({"LAKEHOUSE_DATA_DIR": str(root / "a")}, dotenv_path=None)
        rebuilt = load_settings({"LAKEHOUSE_DATA_DIR": str(root / "b")}, dotenv_path=None)
        shared_bronze = Path(rebuilt.layer_uri("bronze").removeprefix("file://"))
        shared_bronze.parent.mkdir(parents=True)
        shared_bronze.symlink_to(Path(incremental.layer_uri("bronze").removeprefix("file://")))
        published = False
        for step, batch in enumerate(batches):
            now = START + dt.timedelta(hours=step)
            files = _land(root / f"landing-{step}", step, batch)
            a = run_layers(incremental, pg_a, layers=("bronze", "silver"), spark=spark, files=files, now=now,
                           scan=False, maintain=False, log_line=lambda _: None)  # fmt: skip
            assert a.status == "succeeded", a.gate_failures
            if not files:
                continue  # nothing new: silver was left as it was
            if published and any("rebuilt from all bronze history" in note for note in a.notes):
                raise AssertionError(f"batch {step} was not incremental: {a.notes}")
            published = True
            b = run_layers(rebuilt, pg_b, layers=("silver",), spark=spark, now=now, full_refresh=True,
                           scan=False, maintain=False, log_line=lambda _: None)  # fmt: skip
            assert b.status == "succeeded", b.gate_failures
            for schema in ("silver", "quarantine"):
                for table in TABLES:
                    name = f"{schema}.{table} after batch {step}"
                    lakes = lake_rows(spark, incremental, schema, table), lake_rows(spark, rebuilt, schema, table)
                    assert lakes[0] == lakes[1], name
                    assert warehouse_rows(pg_a, schema, table) == warehouse_rows(pg_b, schema, table), name
            balances = reconciliation(pg_a, a.run_id), reconciliation(pg_b, b.run_id)
            assert balances[0] == balances[1], f"reconciliation after batch {step}"


def _land(landing: Path, step: int, batch: dict[str, list[str]]) -> tuple[Any, ...]:
    landing.mkdir()
    for table, rows in batch.items():
        if rows:
            text = "\n".join([HEADERS[table], *rows]) + "\n"
            (landing / f"{table}_{step}.csv").write_text(text, encoding="utf-8")
    found, refused = discover(landing)
    assert refused == []
    return tuple(found)


def test_a_table_without_new_rows_whose_parent_kept_its_keys_is_left_as_it_was(
    spark: Any, pg_database: PostgresSettings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A batch of performance rows alone re-classifies performance only: advertisers and campaigns are not
    classified again (the log says so for each) and their Delta tables get no commit."""
    config = load_settings({"LAKEHOUSE_DATA_DIR": str(tmp_path / "lake")}, dotenv_path=None)
    first = {
        "advertisers": ["2,Bolt,Retail,US,"],
        "campaigns": ["11,2,C,Search,Active,Sales,2024-01-01,2024-01-31,10.00,310.00"],
        "performance": ["100,11,2024-01-02,1000,20,2,11.50,80.00"],
    }
    lake_versions: dict[str, int | None] = {}
    for step, batch in enumerate([first, {"performance": ["100,11,2024-01-02,900,20,2,11.50,80.00"]}]):
        if step == 1:
            lake_versions = {
                f"{schema}.{table}": lake.table_version(spark, lake.table_uri(config, schema, table))
                for schema in ("silver", "quarantine")
                for table in TABLES
            }
        caplog.clear()
        with caplog.at_level("INFO", logger="lakehouse.silver.layer"):
            outcome = run_layers(config, pg_database, layers=("bronze", "silver"), spark=spark,
                                 files=_land(tmp_path / f"landing-{step}", step, batch),
                                 now=START + dt.timedelta(hours=step),
                                 scan=False, maintain=False, log_line=lambda _: None)  # fmt: skip
        assert outcome.status == "succeeded", outcome.gate_failures
    left = [r.getMessage() for r in caplog.records if "left as it was" in r.getMessage()]
    assert left == [
        "silver/advertisers: no new rows and no parent key came or went: left as it was",
        "silver/campaigns: no new rows and no parent key came or went: left as it was",
    ]
    after = {name: lake.table_version(spark, lake.table_uri(config, *name.split("."))) for name in lake_versions}
    changed = sorted(name for name in lake_versions if after[name] != lake_versions[name])
    assert changed == ["silver.performance"]  # performance 100's newer version replaced the old one


@pytest.mark.parametrize("required", [True, False], ids=["required", "nullable"])
def test_the_merges_date_range_holds_every_silver_row_the_earlier_rows_can_be(
    spark: Any, monkeypatch: pytest.MonkeyPatch, required: bool
) -> None:
    """The condition an incremental MERGE into clustered silver reads within: the dates of the earlier rows that
    parse (each silver row it deletes is one of them), and null dates where the cluster column may be null."""
    from dataclasses import replace

    from lakehouse.silver import layer

    contract = SILVER["performance"]
    columns = tuple(replace(c, required=required) if c.name == "date" else c for c in contract.columns)
    monkeypatch.setitem(SILVER, "performance", replace(contract, columns=columns))
    earlier = spark.createDataFrame([("2024-01-05",), (" 2024-01-20 ",), ("not a date",), (None,)], "date string")
    published = spark.createDataFrame(
        [(dt.date(2024, 1, 4),), (dt.date(2024, 1, 5),), (dt.date(2024, 1, 20),), (dt.date(2024, 1, 21),), (None,)],
        "date date",
    )

    within = layer._span(earlier, "performance")

    assert within is not None
    kept = [r.date for r in published.where(within).collect()]
    assert kept == [dt.date(2024, 1, 5), dt.date(2024, 1, 20)] + ([] if required else [None])
    assert layer._span(earlier, "advertisers") is None  # no clustering: the MERGE reads every file


def test_a_parent_that_fails_stops_its_children_and_nothing_is_published(
    spark: Any, pg_database: PostgresSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The three tables are classified at once, children waiting for their parent's keys. When the parent's
    classification fails, its children stop waiting: the run ends with the parent's error (the children's, naming
    the parent, noted on it) instead of hanging, and no silver or quarantine table gets a commit."""
    import threading

    from lakehouse.silver import layer

    config = load_settings({"LAKEHOUSE_DATA_DIR": str(tmp_path / "lake")}, dotenv_path=None)

    def run(step: int) -> Any:
        batch = {  # each step a new version of every row: all three tables have new rows
            "advertisers": [f"2,Bolt {step},Retail,US,"],
            "campaigns": [f"11,2,C {step},Search,Active,Sales,2024-01-01,2024-01-31,10.00,310.00"],
            "performance": [f"100,11,2024-01-02,{1000 + step},20,2,11.50,80.00"],
        }
        return run_layers(config, pg_database, layers=("bronze", "silver"), spark=spark,
                          files=_land(tmp_path / f"landing-{step}", step, batch), now=START + dt.timedelta(hours=step),
                          scan=False, maintain=False, log_line=lambda _: None)  # fmt: skip

    assert run(0).status == "succeeded"
    versions = {
        (schema, table): lake.table_version(spark, lake.table_uri(config, schema, table))
        for schema in ("silver", "quarantine")
        for table in TABLES
    }
    classify = layer.classify

    def failing(bronze: Any, table: str, parent: Any) -> Any:
        if table == "advertisers":
            raise RuntimeError("advertisers cannot be classified")
        return classify(bronze, table, parent)

    monkeypatch.setattr(layer, "classify", failing)
    raised: list[BaseException] = []

    def second() -> None:
        try:
            run(1)
        except BaseException as error:  # the test inspects it
            raised.append(error)

    worker = threading.Thread(target=second, daemon=True)  # daemon: a hang fails the test, not the session
    worker.start()
    worker.join(timeout=600)
    assert not worker.is_alive(), "the run hung: a child kept waiting for its failed parent"
    [error] = raised
    assert isinstance(error, RuntimeError)
    assert str(error) == "advertisers cannot be classified"
    notes = " ".join(getattr(error, "__notes__", []))
    assert "silver/advertisers failed, so its children were not classified" in notes
    after = {name: lake.table_version(spark, lake.table_uri(config, *name)) for name in versions}
    assert after == versions
