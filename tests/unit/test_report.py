"""The run summary: table rendering, the storage comparison and the JSON document."""

from __future__ import annotations

import json

from lakehouse.quality import CheckResult, LayerQuality
from lakehouse.report import LayerBytes, Storage, SummaryRow, as_json, layer_loads, quality_lines, render_table

ROWS = [
    SummaryRow(
        "bronze",
        "performance",
        files=53,
        rows_in=233277,
        rows_out=233277,
        corrupt=417,
        csv_bytes=12_000_000,
        parquet_bytes=6_400_000,
        seconds=7.4,
    ),
    SummaryRow("bronze", "-> PostgreSQL", seconds=5.8),
    SummaryRow(
        "silver", "performance", rows_in=233277, rows_out=228829, quarantined=4170, duplicates=278, superseded=0
    ),
]


def test_the_table_has_a_header_aligned_numbers_and_dashes_for_what_does_not_apply() -> None:
    lines = render_table(ROWS).splitlines()

    assert lines[0].split() == [
        "layer",
        "table",
        "files",
        "rows",
        "corrupt",
        "quarantined",
        "dups",
        "superseded",
        "CSV",
        "Parquet",
        "seconds",
    ]
    assert set(lines[1]) <= {"-", " "}
    assert lines[2].split()[:5] == ["bronze", "performance", "53", "233,277", "417"]
    assert "12.0 MB" in lines[2]
    assert "6.4 MB" in lines[2]
    assert lines[3].split()[3:5] == ["-", "-"]  # "-> PostgreSQL" is two words
    assert len({len(line) for line in lines}) == 1


def test_layer_loads_leave_out_the_timing_rows() -> None:
    assert [r.table_name for r in layer_loads(ROWS)] == ["performance", "performance"]


def test_storage_saving_is_measured_against_the_csv() -> None:
    storage = Storage(csv_bytes=15_000_000, bronze_parquet_bytes=4_500_000, silver_parquet_bytes=16_500_000)

    assert storage.saving(storage.bronze_parquet_bytes) == 70.0
    text = storage.render()
    assert "bronze Parquet (Delta) 4.5 MB, 70 % smaller" in text
    assert "silver Parquet (Delta) 16.5 MB, 10 % larger" in text
    assert Storage(0, 0, 0).saving(0) is None


def test_a_layer_not_built_yet_gets_no_comparison() -> None:
    """After a bronze-only run silver has no Parquet: no "0 B, 100 % smaller"."""
    storage = Storage(csv_bytes=15_000_000, bronze_parquet_bytes=8_000_000, silver_parquet_bytes=0)

    text = storage.render()

    assert "silver Parquet (Delta): not built yet" in text
    assert "100 %" not in text
    assert storage.saving(storage.silver_parquet_bytes) is None


def test_tiny_inputs_say_the_footer_outweighs_the_data_instead_of_a_percentage() -> None:
    storage = Storage(csv_bytes=1_200, bronze_parquet_bytes=36_000, silver_parquet_bytes=35_000)

    text = storage.render()

    assert "larger" not in text.replace("too small", "")
    assert "%" not in text
    assert "bronze Parquet (Delta) 36.0 KB: the input is too small to compare" in text
    assert storage.saving(storage.bronze_parquet_bytes) is None
    # a large input that grew is still reported as a percentage
    assert "10 % larger" in Storage(15_000_000, 16_500_000, 1).render()


def test_storage_shows_each_layers_current_on_disk_and_reclaimable_bytes() -> None:
    layers = (LayerBytes("bronze", 4_300_000, 4_400_000, 0), LayerBytes("silver", 3_500_000, 11_000_000, 7_400_000))
    storage = Storage(
        csv_bytes=15_000_000, bronze_parquet_bytes=4_300_000, silver_parquet_bytes=3_500_000, layers=layers
    )

    lines = storage.render().splitlines()

    assert lines[-2:] == [
        "  bronze: current version 4.3 MB, on disk 4.4 MB, reclaimable 0 B",
        "  silver: current version 3.5 MB, on disk 11.0 MB, reclaimable 7.4 MB",
    ]


def test_json_summary_carries_tables_checks_and_storage() -> None:
    scan = LayerQuality(
        "silver",
        (
            CheckResult("No negative cost", "silver.performance", "fail", 3.0, "fail when > 0"),
            CheckResult("Keys unique", "silver.performance", "pass", 0.0),
        ),
        0.4,
    )

    document = json.loads(
        as_json(run_id="r1", status="failed", rows=ROWS, scans=[scan], storage=Storage(10, 5, 4), seconds=1.5)
    )

    assert document["status"] == "failed"
    assert document["tables"][0]["table_name"] == "performance"
    assert document["tables"][0]["corrupt"] == 417
    assert document["quality"][0] | {"checks": None} == {
        "layer": "silver",
        "passed": 1,
        "warned": 0,
        "failed": 1,
        "checks": None,
    }
    assert document["storage"]["bronze_saving_pct"] == 50.0
    assert quality_lines([scan])[1] == "  FAIL silver.performance: No negative cost (fail when > 0)"
