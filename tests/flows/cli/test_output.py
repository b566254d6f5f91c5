"""`wwhub query` output (table, CSV, JSON) of every DuckDB type: plain values, never an internal error."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from flows.cli import main
from flows.lake import Lake

TYPES = (
    "SELECT 1.5 AS d, 123456789012345678.123::DECIMAL(38,3) AS big, TIME '01:02:03' AS t,"
    " '8a4c5c36-5b4f-4f0e-9a43-2d1f8c0e6b1a'::UUID AS u, '\\x00ab'::BLOB AS b, INTERVAL 1 DAY AS i,"
    " [1.5, NULL] AS l, {'k': 2.5} AS s"
)


@pytest.fixture
def lake(tmp_path):
    return str(Lake.for_writing(tmp_path / "lake").root)


def query(lake, sql, fmt, capsys) -> str:
    assert main(["query", sql, "--lake", lake, "--format", fmt]) == 0, capsys.readouterr().err
    return capsys.readouterr().out


def test_json_output_of_decimal_time_uuid_blob_interval_and_nested_values(lake, capsys):
    (row,) = json.loads(query(lake, TYPES, "json", capsys))
    assert row == {
        "d": 1.5,
        "big": pytest.approx(123456789012345678.123, rel=1e-16),  # a JSON number is a double
        "t": "01:02:03",
        "u": "8a4c5c36-5b4f-4f0e-9a43-2d1f8c0e6b1a",
        "b": "AGFi",  # base64 of the bytes 00 61 62
        "i": "P1D",
        "l": [1.5, None],
        "s": {"k": 2.5},
    }


def test_csv_output_keeps_decimal_digits_and_writes_nested_values_as_json(lake, capsys):
    (row,) = csv.DictReader(io.StringIO(query(lake, TYPES, "csv", capsys)))
    assert row == {
        "d": "1.5",
        "big": "123456789012345678.123",
        "t": "01:02:03",
        "u": "8a4c5c36-5b4f-4f0e-9a43-2d1f8c0e6b1a",
        "b": "AGFi",
        "i": "P1D",
        "l": "[1.5, null]",
        "s": '{"k": 2.5}',
    }


def test_table_output_of_every_type(lake, capsys):
    header, _, line = query(lake, TYPES, "table", capsys).splitlines()
    assert header.split() == ["d", "big", "t", "u", "b", "i", "l", "s"]
    assert line.split("  ")[0:2] == ["1.5", "123456789012345678.123"]
    for cell in ("01:02:03", "8a4c5c36-5b4f-4f0e-9a43-2d1f8c0e6b1a", "AGFi", "P1D", "[1.5, null]", '{"k": 2.5}'):
        assert cell in line


@pytest.mark.skipif(not Path("/sys/kernel").is_dir(), reason="needs a folder nobody may create files in (sysfs)")
def test_a_parquet_export_to_an_unwritable_path_is_one_line_exit_2(lake, capsys):
    for fmt in ("parquet", "csv"):
        assert main(["query", "SELECT 1 AS a", "--lake", lake, "--format", fmt, "--out", f"/sys/x.{fmt}"]) == 2
        err = capsys.readouterr().err.strip()
        assert f"/sys/x.{fmt}" in err and "Permission denied" in err and len(err.splitlines()) == 1, err


@pytest.mark.parametrize(
    "sql, named",
    [
        ("SELECT 1 AS ok, INTERVAL 1 DAY AS i", "i (INTERVAL: Arrow month_day_nano_interval)"),
        ("SELECT union_value(k := 1) AS u", "u (UNION: Arrow sparse_union<k: int32=0>)"),
        ("SELECT [INTERVAL 1 DAY] AS l", "l (INTERVAL: Arrow list<l: month_day_nano_interval>)"),
    ],
)
def test_a_parquet_export_of_a_type_parquet_cannot_store_names_the_column(lake, tmp_path, sql, named, capsys):
    out = tmp_path / "x.parquet"
    assert main(["query", sql, "--lake", lake, "--format", "parquet", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert named in err and "CAST(" in err and len(err.splitlines()) == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lake"]  # no file, no partial


@pytest.mark.parametrize("fmt", ["json", "csv", "table", "parquet"])
def test_columns_of_the_same_name_are_all_kept_under_unique_names(lake, tmp_path, fmt, capsys):
    sql = "SELECT 1 AS a, 2 AS a, 3 AS a_1, 4 AS a"  # a_1 is taken: the repeats get the first free suffixes
    expected = {"a": 1, "a_2": 2, "a_1": 3, "a_3": 4}
    if fmt == "parquet":
        import pyarrow.parquet as pq

        out = tmp_path / "x.parquet"
        assert main(["query", sql, "--lake", lake, "--format", fmt, "--out", str(out)]) == 0
        assert pq.read_table(out).to_pylist() == [expected]
        return
    text = query(lake, sql, fmt, capsys)
    if fmt == "json":
        assert json.loads(text) == [expected]
    elif fmt == "csv":
        assert text.splitlines() == ["a,a_2,a_1,a_3", "1,2,3,4"]
    else:
        assert text.splitlines()[0].split() == ["a", "a_2", "a_1", "a_3"] and text.splitlines()[2].split() == list(
            "1234"
        )


def test_csv_of_no_rows_is_its_header_line(lake, capsys):
    assert query(lake, "SELECT 1 AS repo_id, 2.5 AS alpha WHERE false", "csv", capsys) == "repo_id,alpha\n"
