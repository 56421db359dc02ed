"""Landing on object storage (``LAKEHOUSE_LANDING_URI=s3a://bucket/prefix``) on a real MinIO: the same files put
under an S3 prefix and into a local folder are refused alike and ingest into equal bronze tables, ingest logs and
PostgreSQL mirrors; a re-run ingests nothing; an object rewritten after its batch was planned fails the batch."""

from __future__ import annotations

import contextlib
import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from lakehouse.adapters import lake
from lakehouse.adapters.objectstore import s3_client
from lakehouse.adapters.warehouse import connect
from lakehouse.bronze import layer as bronze
from lakehouse.bronze.ingest_log import ingest_log_uri
from lakehouse.bronze.parse import parse_files
from lakehouse.contracts import TABLES
from lakehouse.pipeline import landing_files
from lakehouse.sample import generate
from lakehouse.settings import PostgresSettings, S3Settings, Settings, load_settings
from tests.databases import fresh_database
from tests.hostile import NUL_FIELD, campaigns_csv, land_hostile_names

pytestmark = pytest.mark.integration
T1 = dt.datetime(2024, 2, 9, 10, tzinfo=dt.UTC)
PER_RUN = ("_batch_id", "batch_id")  # a batch id is random per run; everything else must be equal


def _settings(data_dir: Path, s3: S3Settings, landing: str | None = None) -> Settings:
    env = {"LAKEHOUSE_DATA_DIR": str(data_dir)} | s3.aws_env()
    return load_settings(env | ({"LAKEHOUSE_LANDING_URI": landing} if landing else {}), dotenv_path=None)


def _put_folder(s3: S3Settings, folder: Path, bucket: str, prefix: str) -> None:
    client = s3_client(s3)
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        client.put_object(Bucket=bucket, Key=f"{prefix}/{path.relative_to(folder).as_posix()}", Body=path.read_bytes())


def _query(pg: PostgresSettings, query: str) -> list[tuple[Any, ...]]:
    with contextlib.closing(connect(pg)) as conn, conn.cursor() as cur:
        cur.execute(query)
        return sorted(cur.fetchall(), key=repr)


def _same_rows(spark: Any, one: str, other: str) -> int:
    ours, theirs = (lake.read_table(spark, uri).drop(*PER_RUN) for uri in (one, other))
    assert ours.exceptAll(theirs).isEmpty(), (one, other)
    assert theirs.exceptAll(ours).isEmpty(), (one, other)
    return int(ours.count())


def test_an_s3_landing_prefix_ingests_exactly_what_the_same_local_folder_ingests(
    spark: Any, s3_service: S3Settings, s3_bucket: str, pg_service: PostgresSettings, tmp_path: Path
) -> None:
    landing = tmp_path / "landing"
    manifest = generate(landing, scale=0.05, seed=7, dirty_rate=0.05)
    land_hostile_names(landing / "names")  # spaces, %, #, globs, a colon, unicode, a newline: all in keys too
    (landing / "campaigns_bad_header.csv").write_text("campaign_id,nonsense\n1,2\n")
    (landing / "names" / "campaigns_nul.csv").write_text(campaigns_csv("fine", NUL_FIELD))
    (landing / "advertisers_latin1.csv").write_bytes(
        b"advertiser_id,advertiser_name,industry,country,account_manager\n1,Caf\xe9,Retail,FR,Ann\n"
    )
    (landing / "notes.txt").write_text("not a CSV: never listed\n")
    _put_folder(s3_service, landing, s3_bucket, "landing/daily")
    on_s3 = _settings(tmp_path / "s3", s3_service, f"s3a://{s3_bucket}/landing/daily")
    local = _settings(tmp_path / "local", s3_service)

    s3_files, s3_refused = landing_files(on_s3, None)
    local_files, local_refused = landing_files(local, landing)

    assert [(f.source_file, f.table, f.content_hash, f.bytes) for f in s3_files] == [
        (f.source_file, f.table, f.content_hash, f.bytes) for f in local_files
    ]
    assert {f.source_file for f in s3_files} >= set(manifest["files"]) | {"names/campaigns[1].csv"}
    assert [r.reason for r in s3_refused] == [r.reason for r in local_refused]
    reasons = " | ".join(r.reason for r in s3_refused)
    assert "campaigns_bad_header.csv: header refused (missing: " in reasons
    assert "unknown: nonsense" in reasons
    assert "names/campaigns_nul.csv: line 3: a NUL byte" in reasons
    assert "advertisers_latin1.csv: line 2: not valid UTF-8" in reasons
    assert len(s3_refused) == 3

    with fresh_database(pg_service) as pg_s3, fresh_database(pg_service) as pg_local:
        from_s3 = bronze.ingest(spark, on_s3, pg_s3, s3_files, now=T1)
        from_local = bronze.ingest(spark, local, pg_local, local_files, now=T1)

        for table in TABLES:
            rows = _same_rows(spark, *(lake.table_uri(s, "bronze", table) for s in (on_s3, local)))
            assert rows == from_s3.tables[table].rows == from_local.tables[table].rows > 0, table
            assert (from_s3.tables[table].corrupt, from_s3.tables[table].csv_bytes) == (
                from_local.tables[table].corrupt,
                from_local.tables[table].csv_bytes,
            )
            per_file = f"select _source_file, count(*) from bronze.raw_{table} group by 1"
            assert _query(pg_s3, per_file) == _query(pg_local, per_file)
        assert _same_rows(spark, ingest_log_uri(on_s3), ingest_log_uri(local)) == 2 * len(s3_files)
        assert manifest["tables"]["performance"]["records"] == from_s3.tables["performance"].rows

        again = bronze.ingest(spark, on_s3, pg_s3, landing_files(on_s3, None)[0])
        assert again.batches == []
        assert sorted(again.skipped_files) == sorted(f.source_file for f in s3_files)


def test_an_object_rewritten_after_its_batch_was_planned_fails_the_parse(
    spark: Any, s3_service: S3Settings, s3_bucket: str, tmp_path: Path
) -> None:
    client = s3_client(s3_service)
    client.put_object(Bucket=s3_bucket, Key="in/campaigns.csv", Body=campaigns_csv("planned").encode())
    settings = _settings(tmp_path / "data", s3_service, f"s3a://{s3_bucket}/in")
    [planned], _ = landing_files(settings, None)
    (tmp_path / "local").mkdir()
    (tmp_path / "local" / "campaigns.csv").write_text(campaigns_csv("local", "files"))
    [local], _ = landing_files(settings, tmp_path / "local")
    both = parse_files(spark, "campaigns", [planned, local]).frame.where("_records is null").collect()
    assert sorted(r.campaign_name for r in both) == ["files", "local", "planned"]  # a batch may mix the two

    client.put_object(Bucket=s3_bucket, Key="in/campaigns.csv", Body=campaigns_csv("rewritten").encode())

    with pytest.raises(Exception, match="changed since its batch was planned"):
        parse_files(spark, "campaigns", [planned])
