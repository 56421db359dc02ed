"""Hostile landing directories: NUL bytes, names a path API mangles, links, special files, equal names in subfolders."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from lakehouse.bronze.landing import discover
from lakehouse.bronze.parse import parse_files
from lakehouse.bronze.transforms import records_only
from tests.hostile import HOSTILE_FILE_NAMES, NUL_FIELD, campaigns_csv, land_hostile_names

SECRET = "TOP SECRET first line of a private file"


def _reasons(landing: Path) -> dict[str, str]:
    return {r.reason.split(": ", 1)[0]: r.reason for r in discover(landing)[1]}


def test_a_nul_byte_is_refused_naming_file_and_line_and_the_other_files_load(tmp_path: Path) -> None:
    (tmp_path / "campaigns_ok.csv").write_text(campaigns_csv("fine"))
    (tmp_path / "campaigns_nul.csv").write_text(campaigns_csv("fine", "also fine", NUL_FIELD))

    files, refused = discover(tmp_path)

    assert [f.path.name for f in files] == ["campaigns_ok.csv"]
    [refusal] = refused
    assert refusal.reason.startswith("campaigns_nul.csv: line 4: a NUL byte (0x00)")


def test_the_offending_line_is_counted_across_read_chunks(tmp_path: Path) -> None:
    """Files are checked in 1 MiB chunks; a bad byte far into the file is still placed on its line."""
    body = campaigns_csv(*(f"campaign {i:06d}" for i in range(20_000)))  # ~1.4 MB, 20,001 lines
    (tmp_path / "campaigns_latin1.csv").write_bytes(body.encode() + "900,1,Café,x,x,x,x,x,1,1\n".encode("latin-1"))
    (tmp_path / "campaigns_nul.csv").write_bytes(body.encode() + b"\n\n9\x00\n")

    reasons = _reasons(tmp_path)

    assert reasons["campaigns_latin1.csv"].startswith("campaigns_latin1.csv: line 20002: not valid UTF-8")
    assert reasons["campaigns_nul.csv"].startswith("campaigns_nul.csv: line 20004: a NUL byte")


def test_links_are_refused_without_following_or_echoing_what_they_point_to(tmp_path: Path) -> None:
    landing, outside = tmp_path / "landing", tmp_path / "private"
    (landing / "inner").mkdir(parents=True)
    outside.mkdir()
    (outside / "secret.csv").write_text(SECRET + "\n1,2\n")
    (outside / "campaigns_elsewhere.csv").write_text(campaigns_csv("outside"))
    (landing / "inner" / "campaigns.csv").write_text(campaigns_csv("inside"))
    (landing / "campaigns_secret.csv").symlink_to(outside / "secret.csv")
    (landing / "campaigns_inside.csv").symlink_to(landing / "inner" / "campaigns.csv")
    (landing / "folder_outside").symlink_to(outside)
    (landing / "folder_inside").symlink_to(landing / "inner")

    files, refused = discover(landing)

    assert [f.path for f in files] == [landing / "inner" / "campaigns.csv"]
    reasons = {r.reason.split(": ", 1)[0]: r.reason for r in refused}
    assert set(reasons) == {"campaigns_secret.csv", "campaigns_inside.csv", "folder_outside", "folder_inside"}
    for reason in reasons.values():
        assert "a symbolic link" in reason
        assert SECRET not in reason
        assert str(outside) not in reason
        assert "inner" not in reason


def test_a_special_file_named_like_a_csv_is_refused_not_read(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "campaigns_pipe.csv")  # reading it would wait forever for a writer

    assert _reasons(tmp_path) == {"campaigns_pipe.csv": "campaigns_pipe.csv: not a regular file"}


def test_equal_names_in_two_subfolders_stay_apart_by_their_relative_paths(spark: Any, tmp_path: Path) -> None:
    for folder in ("2024-02-09", "2024-02-10"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "campaigns.csv").write_text(campaigns_csv(f"delivered {folder}"))

    files, refused = discover(tmp_path)
    parsed = parse_files(spark, "campaigns", files)

    assert refused == []
    assert [f.source_file for f in files] == ["2024-02-09/campaigns.csv", "2024-02-10/campaigns.csv"]
    rows = records_only(parsed.frame, "campaigns").select("_source_file", "campaign_name").collect()
    assert sorted(map(tuple, rows)) == [
        ("2024-02-09/campaigns.csv", "delivered 2024-02-09"),
        ("2024-02-10/campaigns.csv", "delivered 2024-02-10"),
    ]


def test_every_name_the_file_system_allows_is_read_by_spark_exactly(spark: Any, tmp_path: Path) -> None:
    """URL-encoding characters, Hadoop glob characters, unicode and bytes that are not UTF-8 in a file name."""
    landed = land_hostile_names(tmp_path)
    try:  # a name that is not UTF-8 (Linux allows any bytes; macOS refuses it)
        with open(os.path.join(os.fsencode(tmp_path), b"campaigns_\xe9t\xe9.csv"), "w") as f:
            f.write(campaigns_csv("latin-1 name"))
        landed["campaigns_\\xe9t\\xe9.csv"] = "latin-1 name"
    except OSError:
        pass

    files, refused = discover(tmp_path)
    parsed = parse_files(spark, "campaigns", files)

    assert refused == []
    assert sorted(f.source_file for f in files) == sorted(landed)
    rows = records_only(parsed.frame, "campaigns").select("_source_file", "campaign_name", "_corrupt_record").collect()
    assert sorted(map(tuple, rows)) == sorted((name, campaign, None) for name, campaign in landed.items())
    assert parsed.stats == {name: (1, 0, 0) for name in landed}
    assert set(HOSTILE_FILE_NAMES) <= set(landed)


def test_a_file_changed_after_it_was_planned_fails_its_task_instead_of_loading_other_bytes(
    spark: Any, tmp_path: Path
) -> None:
    (tmp_path / "campaigns.csv").write_text(campaigns_csv("planned"))
    files, _ = discover(tmp_path)
    (tmp_path / "campaigns.csv").write_text(campaigns_csv("swapped in later"))

    with pytest.raises(Exception, match=r"campaigns\.csv: changed since its batch was planned"):
        parse_files(spark, "campaigns", files)
