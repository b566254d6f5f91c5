"""Rows between lakes: import of exports, merge of overlapping lakes, migration of the layout-1 lake, info."""

from __future__ import annotations

import datetime as dt

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flows.cli import main
from flows.lake import Lake
from flows.lake.schema import to_arrow
from flows.lake.sql import run_query
from flows.lake.transfer import info
from tests.flows.lake.synth import fill, model_tables, rows, tree_hashes

LAYERS = "SELECT repo_id, revision, layer_id, alpha, fit_status FROM layers ORDER BY ALL"


def export(lake, folder, tables=("layers", "models", "evals", "esd")):
    folder.mkdir(parents=True, exist_ok=True)
    for table in tables:
        out = str(folder / f"{table}.parquet")
        assert main(["query", f"SELECT * FROM {table}", "--lake", str(lake), "--format", "parquet", "--out", out]) == 0
    return folder


def test_export_then_import_round_trips_and_reimport_replaces(tmp_path):
    source = Lake.for_writing(tmp_path / "a")
    fill(source, 8, layers=5)
    folder = export(source.root, tmp_path / "export")
    assert main(["lake", "import", str(folder), "--lake", str(tmp_path / "b")]) == 0
    for sql in (LAYERS, "SELECT * FROM models ORDER BY repo_id", "SELECT * FROM esd ORDER BY repo_id, layer_id"):
        assert rows(tmp_path / "b", sql) == rows(source.root, sql)
    assert main(["lake", "import", str(folder), "--lake", str(tmp_path / "b")]) == 0  # again: replaced, not doubled
    assert rows(tmp_path / "b", "SELECT count(*) FROM layers") == [(40,)]
    assert rows(tmp_path / "b", "SELECT count(*) FROM models") == [(8,)]


def test_merge_of_overlapping_lakes_keeps_one_row_per_layer(tmp_path):
    first = Lake.for_writing(tmp_path / "first")
    second = Lake.for_writing(tmp_path / "second")
    fill(first, 10, layers=6, seed=0)  # org/m0000 .. org/m0009
    for i in range(5, 15):  # org/m0005 .. org/m0014: five in common, scanned again elsewhere
        repo = f"org/m{i:04d}"
        second.commit_model(repo, "r1", model_tables(repo, layers=6, seed=1000 + i))
    expected_overlap = rows(second.root, "SELECT repo_id, layer_id, alpha FROM layers WHERE repo_id <= 'org/m0009'")
    assert main(["lake", "merge", str(second.root), "--lake", str(first.root)]) == 0
    duplicates = rows(first.root, "SELECT repo_id, revision, layer_id FROM layers GROUP BY ALL HAVING count(*) > 1")
    assert duplicates == []
    assert rows(first.root, "SELECT count(*), count(DISTINCT repo_id) FROM layers") == [(15 * 6, 15)]
    assert rows(first.root, "SELECT count(*) FROM models") == [(15,)]
    # Models in both lakes are there as the merged-in lake has them.
    merged = rows(
        first.root, "SELECT repo_id, layer_id, alpha FROM layers WHERE repo_id BETWEEN 'org/m0005' AND 'org/m0009'"
    )
    assert sorted(merged) == sorted(expected_overlap)
    assert main(["lake", "merge", str(first.root), "--lake", str(first.root)]) == 2


def write_v1_lake(root):
    """A lake as wwhub 0.1 wrote it: one file per (table, repo, commit) in the columns of that release, zero-row
    schema files, an imported evals file, and the DuckDB catalog file; and what the last layout-1 wwhub added: a
    distances file and the derived correlations file."""
    new_columns = {
        "layers": ("expert", "quantization", "source_tensors"),
        "models": ("model_kind", "quantization", "num_dequantized", "num_params", "skip_reasons", "layer_selection"),
        "evals": ("scale", "n_shot", "raw_metric", "stderr"),
        "esd": ("storage", "num_evals", "bulk_quantiles", "rand_num_evals", "rand_bulk_quantiles"),
    }

    def v1(table, rows_):
        arrow = to_arrow(table, rows_)
        return arrow.drop_columns([c for c in new_columns.get(table, ()) if c in arrow.column_names])

    for table in ("layers", "esd", "evals", "models", "scans"):
        (root / table).mkdir(parents=True)
        empty = v1(table, [])
        pq.write_table(empty, root / table / "_schema.parquet")
    for i in range(4):
        repo = f"org/old{i}"
        tables = model_tables(repo, layers=3, seed=i)
        for table, table_rows in tables.items():
            pq.write_table(v1(table, table_rows), root / table / f"org__old{i}@r1.parquet")
    imported = [dict(repo_id="org/old0", revision=None, family="fam", source="import:x", metric="accuracy", value=0.5)]
    pq.write_table(v1("evals", imported), root / "evals" / "import__x.parquet")
    scan = dict(scan_id="s1", started_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC), listed=4, scanned=4)
    pq.write_table(to_arrow("scans", [scan]), root / "scans" / "s1.parquet")
    key = dict(repo_id="org/old1", revision="r1", family="fam", base_repo_id="org/old0", base_revision="r1")
    distances = [dict(key, layer_id=i, name=f"layers.{i}.weight", relative_change=0.1 * i) for i in range(3)]
    for table, table_rows in (("distances", distances), ("correlations", [dict(family="fam", metric="alpha", n=4)])):
        (root / table).mkdir()
        pq.write_table(to_arrow(table, table_rows), root / table / f"{table}.parquet")
    duckdb.connect(str(root / "wwhub.duckdb")).close()


def test_todays_layout_is_read_in_place_and_migrates_with_nothing_lost(tmp_path):
    root = tmp_path / "old"
    write_v1_lake(root)
    before = tree_hashes(root)
    queries = [
        LAYERS,
        "SELECT repo_id, source, value FROM evals ORDER BY ALL",
        "SELECT repo_id, status, alpha FROM models ORDER BY ALL",
        "SELECT repo_id, layer_id, evals FROM esd ORDER BY ALL",
        "SELECT scan_id, scanned FROM scans",
        "SELECT repo_id, base_repo_id, layer_id, relative_change FROM distances ORDER BY ALL",
    ]
    answers = [rows(root, sql) for sql in queries]
    assert len(answers[0]) == 12 and len(answers[1]) == 5
    assert main(["leaderboard", "--lake", str(root)]) == 0
    assert tree_hashes(root) == before  # read in place; nothing written
    assert main(["lake", "migrate", "--lake", str(root)]) == 0
    assert (root / "manifest.json").exists() and not (root / "layers").exists() and not (root / "wwhub.duckdb").exists()
    assert [rows(root, sql) for sql in queries] == answers
    # A full ESD was all that layout 1 kept: migrated rows say so.
    assert rows(root, "SELECT DISTINCT storage, num_evals FROM esd") == [("full", 4)]
    # The import's file name was its key: it becomes the rows' import_id, so importing that origin again replaces it.
    assert rows(root, "SELECT repo_id, import_id FROM evals WHERE revision IS NULL") == [("org/old0", "x")]
    # Derived: not carried over; `lake migrate` has its producer recompute it from the moved rows.
    assert not (root / "correlations").exists()
    assert rows(root, "SELECT DISTINCT reported_metric, n FROM correlations WHERE metric = 'alpha'") == [
        ("accuracy", 4)
    ]
    assert main(["lake", "migrate", "--lake", str(root)]) == 0  # a second time: nothing to do


def test_a_write_migrates_a_layout_1_lake_automatically(tmp_path):
    root = tmp_path / "old"
    write_v1_lake(root)
    lake = Lake.for_writing(root)
    lake.commit_model("org/new", "r1", model_tables("org/new", layers=2))
    assert rows(root, "SELECT count(*) FROM models") == [(5,)]
    assert lake.has_model("org/old3", "r1")


def test_info_reports_rows_files_and_the_last_scan(tmp_path, capsys):
    lake = Lake.for_writing(tmp_path / "lake")
    fill(lake, 3, layers=4)
    lake.commit({"scans": [dict(scan_id="s9", ended_at=dt.datetime(2026, 2, 1, tzinfo=dt.UTC))]})
    facts = info(lake.root)
    assert facts["layout"] == 2 and facts["last_scan"]["scan_id"] == "s9"
    assert facts["tables"]["layers"]["rows"] == 12 and facts["tables"]["models"]["rows"] == 3
    assert main(["lake", "info", "--lake", str(lake.root)]) == 0
    assert "layers" in capsys.readouterr().out


@pytest.mark.parametrize("name", ["correlations"])
def test_derived_tables_are_replaced_whole(tmp_path, name):
    lake = Lake.for_writing(tmp_path / "lake")
    fill(lake, 3)
    lake.replace_derived(name, [dict(family="fam", metric="alpha", n=3, pearson_r=0.5)])
    lake.replace_derived(name, [dict(family="fam", metric="alpha", n=3, pearson_r=-0.25)])
    assert rows(lake.root, f"SELECT family, pearson_r FROM {name}") == [("fam", -0.25)]
    # By name (`wwhub query correlations`): the table.
    assert [(r["family"], r["pearson_r"]) for r in run_query(lake.root, name)] == [("fam", -0.25)]
    with pytest.raises(ValueError, match="not a derived table"):
        lake.replace_derived("layers", [])


def _spoil(table, column: str, values: list):
    import pyarrow as pa

    field = table.schema.field(column)
    return table.set_column(table.schema.get_field_index(column), field, pa.array(values, field.type))


def _null_family(folder):
    models = pq.read_table(folder / "models.parquet")
    return "models", _spoil(models, "family", [None] + models["family"].to_pylist()[1:]), "1 row(s) with no family"


def _pooled_family(folder):
    models = pq.read_table(folder / "models.parquet")
    spoiled = _spoil(models, "family", ["(all)"] + models["family"].to_pylist()[1:])
    return "models", spoiled, "family '(all)': names in parentheses are reserved"


def _model_twice(folder):
    import pyarrow as pa

    models = pq.read_table(folder / "models.parquet")
    return "models", pa.concat_tables([models, models.slice(2, 1)]), "2 rows with the same key (repo_id='org/m0002'"


def _layer_twice(folder):
    import pyarrow as pa

    layers = pq.read_table(folder / "layers.parquet")
    return "layers", pa.concat_tables([layers, layers.slice(0, 1)]), "a layers file holds each row once"


def _distance_twice(folder):
    """One layer's distance by two methods is two rows; by one method twice, a repeated row."""
    key = dict(repo_id="org/m0001", revision="r1", family="fam", base_repo_id="org/m0000", base_revision="r0")
    rows = [dict(key, layer_id=0, name="layers.0.weight", method=m) for m in ("euclidean", "cka", "euclidean")]
    expected = "2 rows with the same key (repo_id='org/m0001'"
    return "distances", to_arrow("distances", rows), expected


def _repo_id(table_name: str, column: str, value: str):
    def spoil(folder):
        if table_name == "distances":
            key = dict(repo_id="org/m0001", revision="r1", family="fam", base_repo_id="org/m0000", base_revision="r0")
            table = to_arrow("distances", [dict(key, layer_id=0, name="layers.0.weight")])
        else:
            table = pq.read_table(folder / f"{table_name}.parquet")
        table = _spoil(table, column, [value] + table[column].to_pylist()[1:])
        return table_name, table, f"{table_name}.parquet: {column} {value!r} is not a Hub repo id: expected org/name"

    return spoil


def _doubles(models, first: float):
    import pyarrow as pa

    values = pa.array([first] + [float(n) for n in models["num_layers"].to_pylist()[1:]], pa.float64())
    return models.set_column(models.schema.get_field_index("num_layers"), "num_layers", values)


def _not_whole(folder):
    models = pq.read_table(folder / "models.parquet")
    return "models", _doubles(models, 3.5), "values that are not whole numbers in num_layers (1 rows)"


def _eval_value(value, stderr=None, expected=""):
    def spoil(folder):
        evals = pq.read_table(folder / "evals.parquet")
        evals = _spoil(evals, "value", [value] + evals["value"].to_pylist()[1:])
        evals = _spoil(evals, "stderr", [stderr] + evals["stderr"].to_pylist()[1:])
        return "evals", evals, expected

    return spoil


@pytest.mark.parametrize(
    "spoil",
    [
        _null_family,
        _pooled_family,
        _model_twice,
        _layer_twice,
        _distance_twice,
        _not_whole,
        _eval_value(float("nan"), expected="accuracy nan: not a finite number"),
        _eval_value(float("inf"), expected="accuracy inf: not a finite number"),
        _eval_value(-0.5, expected="accuracy -0.5: outside [0, 1] for a proportion on the fraction scale"),
        _eval_value(95.0, expected="accuracy 95.0: outside [0, 1]"),
        _eval_value(1e300, expected="accuracy 1e+300: outside [0, 1]"),
        _eval_value(0.5, stderr=-0.01, expected="stderr -0.01: not a finite non-negative number"),
        _repo_id("models", "repo_id", "o'rg/na\"me"),
        _repo_id("layers", "repo_id", "a/b/c"),
        _repo_id("evals", "repo_id", "org/m..0"),
        _repo_id("distances", "base_repo_id", "-org/m0000"),
        _repo_id("models", "repo_id", "org/naïve"),
    ],
    ids=[
        "null family",
        "family (all)",
        "model twice",
        "layer twice",
        "distance twice",
        "3.5 as BIGINT",
        "nan",
        "inf",
        "negative",
        "percent",
        "1e300",
        "stderr",
        "repo_id with quotes",
        "repo_id with two slashes",
        "repo_id with ..",
        "base_repo_id starting with -",
        "repo_id not ASCII",
    ],
)
def test_import_refuses_rows_the_lake_could_not_hold_and_changes_nothing(tmp_path, capsys, spoil):
    """What a scan or ``wwhub evals import`` never writes is refused at the door, in one line, and the lake is left
    as it was: a model without a family (the leaderboard, plots and pages sort by it), a row twice in one file (it
    would be in the lake twice), evals values ``wwhub evals import`` refuses, repo ids no scan accepts."""
    table, spoiled, expected = spoil(_exported(tmp_path))
    bad = tmp_path / "bad" / f"{table}.parquet"
    bad.parent.mkdir()
    pq.write_table(spoiled, bad)
    assert expected in _refused_leaving_the_lake_as_it_was(tmp_path, capsys, bad)


def _exported(tmp_path):
    """The export folder of a 4-model lake."""
    source = Lake.for_writing(tmp_path / "a")
    fill(source, 4, layers=3)
    return export(source.root, tmp_path / "export")


def _refused_leaving_the_lake_as_it_was(tmp_path, capsys, bad) -> str:
    """The one-line error of importing ``bad`` into a 2-model lake, checked to be exit 2 and to change no file."""
    target = Lake.for_writing(tmp_path / "b")
    fill(target, 2, layers=2)
    before = tree_hashes(target.root)
    capsys.readouterr()
    assert main(["lake", "import", str(bad), "--lake", str(target.root)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1, error
    assert tree_hashes(target.root) == before
    return error


GOOD_REPO_IDS = ["a", "a/b", "Org-1/Model_2.5", "_/_", "1/2", "a.-b/c-.d", "foo.GIT", "a.git.b", "x" * 96]
GOOD_REPO_IDS += ["o" * 96 + "/" + "n" * 96]
BAD_REPO_IDS = ["", "o'rg/na\"me", "a/b/c", "/a", "a/", "a//b", "-a", "a-", ".a", "a.", "org/-a", "org./a", "a--b"]
BAD_REPO_IDS += ["a..b", "foo.git", "org/foo.git", "x" * 97, "o" * 97 + "/n", "a b", " a", "a\nb", "a/b\n", "a:b"]
BAD_REPO_IDS += ["a@b", "a\\b", "a%2Fb", "org/naïve", "ä/b", "日本/モデル", "a\u0301", "org/\u00a0x"]


def _passes(check, repo_id, refusal: type[Exception]) -> bool:
    try:
        check(repo_id)
    except refusal:
        return False
    return True


def _accepted(repo_id: str) -> bool:
    from flows.sources.base import check_repo_id

    return _passes(check_repo_id, repo_id, ValueError)


def test_check_repo_id_is_huggingface_hubs_rule():
    """check_repo_id is written out (importing huggingface_hub's validator brings its HTTP client into a local scan):
    it accepts exactly the strings validate_repo_id accepts, and refuses None (which validate_repo_id lets pass)."""
    import random

    from huggingface_hub.utils import HFValidationError, validate_repo_id

    rng = random.Random(1)
    fuzz = ["".join(rng.choices("aaaZ9_.-/ 'é\n", k=rng.randrange(0, 12))) for _ in range(20000)]
    fuzz += ["a" * n + "/" + "b" * m for n in (0, 1, 95, 96, 97) for m in (0, 1, 96, 97)]
    fuzz += [f"{a}.git{b}" for a in ("", "a", "a/b") for b in ("", "x", ".")]
    assert [_accepted(i) for i in GOOD_REPO_IDS + BAD_REPO_IDS] == [True] * 10 + [False] * len(BAD_REPO_IDS)
    verdicts = [_accepted(i) for i in fuzz]
    assert sum(verdicts) > 500 and len(verdicts) - sum(verdicts) > 500  # both sides well covered
    ids = GOOD_REPO_IDS + BAD_REPO_IDS + fuzz
    disagree = [i for i in ids if _accepted(i) != _passes(validate_repo_id, i, HFValidationError)]
    assert disagree == []
    for not_a_string in (None, 3, ["a/b"]):
        assert not _accepted(not_a_string)


def _corrupt_pages(path, to, start: float, stop: float):
    """``path`` with the bytes from ``start`` to ``stop`` (fractions of its pages) inverted: the footer (at the end)
    still reads, so DESCRIBE passes, and decoding the pages there fails."""
    data = bytearray(path.read_bytes())
    pages = len(data) - 8 - int.from_bytes(data[-8:-4], "little")  # the footer: its length, then b"PAR1"
    first, last = 4 + int(start * (pages - 4)), 4 + int(stop * (pages - 4))
    data[first:last] = bytes(b ^ 0xFF for b in data[first:last])
    to.parent.mkdir(exist_ok=True)
    to.write_bytes(bytes(data))
    return to


@pytest.mark.parametrize("table", ["models", "layers"])
@pytest.mark.parametrize("start, stop", [(0, 1), (0.5, 1), (0.9, 1)], ids=["all pages", "last half", "last tenth"])
def test_import_of_a_file_with_corrupt_pages_is_refused_naming_it_and_changes_nothing(
    tmp_path, capsys, table, start, stop
):
    """Pages the validation decodes (repo_id, family first) or not (the last columns): exit 2 naming the file,
    whether the file would be rewritten or adopted by a copy (an export in today's columns, clustered by repo)."""
    folder = _exported(tmp_path)
    bad = _corrupt_pages(folder / f"{table}.parquet", tmp_path / "bad" / f"{table}.parquet", start, stop)
    assert f"{bad}: not a readable Parquet file (" in _refused_leaving_the_lake_as_it_was(tmp_path, capsys, bad)


def test_import_of_whole_doubles_into_a_bigint_column_keeps_them(tmp_path):
    source = Lake.for_writing(tmp_path / "a")
    fill(source, 4, layers=3)
    folder = export(source.root, tmp_path / "export")
    models = pq.read_table(folder / "models.parquet")
    pq.write_table(_doubles(models, 7.0), tmp_path / "models.parquet")
    assert main(["lake", "import", str(tmp_path / "models.parquet"), "--lake", str(tmp_path / "b")]) == 0
    expected = [7, *models["num_layers"].to_pylist()[1:]]
    assert rows(tmp_path / "b", "SELECT num_layers FROM models ORDER BY repo_id") == [(n,) for n in expected]


def test_merge_of_an_empty_lake_says_nothing_was_merged(tmp_path, capsys):
    target = Lake.for_writing(tmp_path / "target")
    fill(target, 2, layers=2)
    Lake.for_writing(tmp_path / "empty")
    capsys.readouterr()
    assert main(["lake", "merge", str(tmp_path / "empty"), "--lake", str(target.root)]) == 0
    assert capsys.readouterr().out == f"merged nothing from {tmp_path / 'empty'}\n"


def test_import_of_evals_without_the_optional_import_id_column_keys_them_by_revision(tmp_path):
    """Only the columns every row needs are required: an evals file of scanned models (each with its revision) may
    leave out import_id, which keys imported evals only."""
    folder = _exported(tmp_path)
    evals = pq.read_table(folder / "evals.parquet")
    assert evals.num_rows and all(r is not None for r in evals["revision"].to_pylist())
    pq.write_table(evals.drop_columns(["import_id"]), tmp_path / "evals.parquet")
    assert main(["lake", "import", str(tmp_path / "evals.parquet"), "--lake", str(tmp_path / "b")]) == 0
    expected = rows(folder.parent / "a", "SELECT repo_id, revision, metric, value FROM evals ORDER BY ALL")
    assert rows(tmp_path / "b", "SELECT repo_id, revision, metric, value FROM evals ORDER BY ALL") == expected


def test_repeated_rows_are_found_through_key_hashes_and_checked_on_the_keys(tmp_path, capsys, monkeypatch):
    """The check groups a hash of each row's key, then checks only shared hashes on the key columns: a hash that
    distinct keys share is no repeated row (every layer key hashed to 7 here), a repeated row is refused whatever
    the hashes, and past HASHES_CHECKED shared hashes every row is checked."""
    from flows.lake import transfer

    folder = _exported(tmp_path)
    path = folder / "layers.parquet"
    layers = pq.read_table(path)
    columns = dict.fromkeys(layers.column_names, "")
    source = f"read_parquet('{path}')"
    con = duckdb.connect()
    con.execute("CREATE MACRO hash(a, b, c, d, e, f) AS 7::UBIGINT")  # the 6 key columns of a layer, all colliding
    keys = "repo_id, revision, layer_id, name, expert, slice_id"
    assert con.execute(f"SELECT count(DISTINCT hash({keys})), count(*) FROM {source}").fetchall() == [(1, 12)]
    transfer._refuse_repeated_rows(con, path, "layers", source, columns)  # no error: no two rows share a key
    twice = tmp_path / "twice.parquet"
    pq.write_table(pa.concat_tables([layers, layers.slice(2, 1)]), twice)
    with pytest.raises(transfer.LakeError, match="2 rows with the same key"):
        transfer._refuse_repeated_rows(con, twice, "layers", f"read_parquet('{twice}')", columns)
    monkeypatch.setattr(transfer, "HASHES_CHECKED", 1)
    bad = tmp_path / "bad" / "layers.parquet"
    bad.parent.mkdir()
    pq.write_table(pa.concat_tables([layers, layers.slice(2, 1)]), bad)
    assert "2 rows with the same key" in _refused_leaving_the_lake_as_it_was(tmp_path, capsys, bad)


def test_a_layers_distance_by_two_methods_is_two_rows(tmp_path):
    key = dict(repo_id="org/m0001", revision="r1", family="fam", base_repo_id="org/m0000", base_revision="r0")
    rows_in = [
        dict(key, layer_id=0, name="layers.0.weight", method=m, delta_W=d) for m, d in (("raw", 1.0), ("cka", 0.2))
    ]
    (tmp_path / "in").mkdir()
    pq.write_table(to_arrow("distances", rows_in), tmp_path / "in" / "distances.parquet")
    assert main(["lake", "import", str(tmp_path / "in" / "distances.parquet"), "--lake", str(tmp_path / "lake")]) == 0
    stored = run_query(tmp_path / "lake", "SELECT method, delta_W FROM distances ORDER BY method")
    assert stored == [{"method": "cka", "delta_W": 0.2}, {"method": "raw", "delta_W": 1.0}]
