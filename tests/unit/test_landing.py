"""Landing CSV parsing: header matching, corrupt records kept with their raw text, values verbatim."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lakehouse.bronze.landing import HeaderMismatchError, ParseStats, discover, match_header, parse_records, table_of

COLUMNS = ("advertiser_id", "advertiser_name", "industry", "country", "account_manager")
HEADER = ",".join(COLUMNS) + "\n"


def _parse(text: str) -> tuple[list[tuple[tuple[str | None, ...], str | None]], ParseStats]:
    stats = ParseStats()
    return list(parse_records(text, COLUMNS, file="advertisers.csv", stats=stats)), stats


@pytest.mark.parametrize(
    ("name", "table"),
    [
        ("performance_2024-02-09.csv", "performance"),
        ("campaigns.csv", "campaigns"),
        ("Advertisers_part1.CSV", "advertisers"),
    ],
)
def test_the_table_is_the_file_name_prefix(name: str, table: str) -> None:
    assert table_of(name) == table


def test_headers_match_case_insensitively_after_trimming_in_any_order() -> None:
    header = [" Country", "ADVERTISER_ID ", "industry", "account_manager", "Advertiser_Name"]

    assert match_header(header, COLUMNS, file="f.csv") == [1, 4, 2, 0, 3]


def test_a_byte_order_mark_is_not_part_of_the_first_column_name() -> None:
    assert match_header(["\ufeffadvertiser_id", *COLUMNS[1:]], COLUMNS, file="f.csv") == [0, 1, 2, 3, 4]


def test_a_refused_header_names_the_file_and_every_offending_column() -> None:
    with pytest.raises(HeaderMismatchError) as info:
        match_header(["advertiser_id", "name", "industry", "industry", "country"], COLUMNS, file="adv.csv")

    message = str(info.value)
    assert message.startswith("adv.csv: header refused")
    assert "missing: advertiser_name, account_manager" in message
    assert "unknown: name" in message
    assert "duplicated: industry" in message


def test_good_records_come_back_in_contract_order_verbatim() -> None:
    text = 'country,advertiser_id,advertiser_name,industry,account_manager\n US ,1,"Acme, ""Inc""",retail,  \n'

    [(values, corrupt)], stats = _parse(text)

    assert values == ("1", 'Acme, "Inc"', "retail", " US ", "  ")
    assert corrupt is None
    assert (stats.records, stats.corrupt) == (1, 0)


def test_short_long_and_broken_lines_are_kept_as_corrupt_records_with_their_raw_text() -> None:
    text = HEADER + "1,a,b\n" + "2,a,b,c,d,e\n" + '3,"Acme" Corp,b,c,d\n' + "4,ok,b,c,d\n"

    records, stats = _parse(text)

    assert [r[1] for r in records] == ["1,a,b", "2,a,b,c,d,e", '3,"Acme" Corp,b,c,d', None]
    assert records[0][0] == (None,) * 5
    assert records[3][0] == ("4", "ok", "b", "c", "d")
    assert (stats.records, stats.corrupt) == (4, 3)


def test_a_quoted_newline_belongs_to_one_record_and_blank_lines_are_counted_not_returned() -> None:
    text = HEADER + "\n" + '1,"two\nlines",b,c,d\n' + "\r\n" + "2,x,b,c,d\r\n"

    records, stats = _parse(text)

    assert [r[0][1] for r in records] == ["two\nlines", "x"]
    assert (stats.records, stats.blank_lines) == (2, 2)


def test_an_unclosed_quote_at_the_end_is_one_corrupt_record() -> None:
    records, stats = _parse(HEADER + '1,"never closed,b,c,d\n2,x,b,c,d\n')

    assert records == [((None,) * 5, '1,"never closed,b,c,d\n2,x,b,c,d')]
    assert stats.corrupt == 1


def test_empty_fields_are_empty_strings_not_nulls() -> None:
    [(values, _)], _ = _parse(HEADER + '1,"",,c,\n')

    assert values == ("1", "", "", "c", "")


printable = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=30)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(*(printable for _ in COLUMNS)), min_size=1, max_size=20))
def test_every_field_survives_verbatim(rows: list[tuple[str, ...]]) -> None:
    """Any printable text — quotes, commas, newlines, unicode — written by a CSV writer parses back unchanged."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)  # RFC 4180: CRLF line ends, fields with CR, LF, comma or quote quoted
    writer.writerow(COLUMNS)
    writer.writerows(rows)

    records, stats = _parse(buffer.getvalue())

    assert [values for values, _ in records] == rows
    assert stats.corrupt == 0


def test_discover_refuses_unknown_tables_bad_headers_and_bad_encodings_but_keeps_the_rest(tmp_path: Path) -> None:
    (tmp_path / "advertisers.csv").write_text(HEADER + "1,a,b,c,d\n")
    (tmp_path / "campaigns_x.csv").write_text("campaign_id,foo\n1,2\n")
    (tmp_path / "clicks.csv").write_text("a\n1\n")
    (tmp_path / "advertisers_latin1.csv").write_bytes(HEADER.encode() + "1,Café,b,c,d\n".encode("latin-1"))
    (tmp_path / "notes.txt").write_text("ignored")

    files, refused = discover(tmp_path)

    assert [f.source_file for f in files] == ["advertisers.csv"]
    assert files[0].table == "advertisers"
    assert len(files[0].content_hash) == 64
    reasons = {r.path.name: r.reason for r in refused}
    assert set(reasons) == {"campaigns_x.csv", "clicks.csv", "advertisers_latin1.csv"}
    assert "missing: advertiser_id" in reasons["campaigns_x.csv"]
    assert "unknown: foo" in reasons["campaigns_x.csv"]
    assert "no table named 'clicks'" in reasons["clicks.csv"]
    assert reasons["advertisers_latin1.csv"].startswith("advertisers_latin1.csv: line 2: not valid UTF-8")
