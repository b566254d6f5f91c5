"""Bounded work per write: an import in any row order becomes segments sorted by repo, split by repo range above a
size; a commit never rewrites a segment larger than the fold bound, however many of its rows it hides."""

from __future__ import annotations

import json
import math

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from flows.lake import MANIFEST, Lake, compaction, parquet, transfer
from flows.lake.compaction import compact
from flows.lake.schema import SCHEMAS, to_arrow
from flows.lake.sql import run_query
from tests.flows.lake.synth import model_tables

LAYERS = "SELECT repo_id, revision, layer_id, alpha FROM layers ORDER BY ALL"


def segments(root, table):
    return json.loads((root / MANIFEST).read_text())["tables"][table]


def shuffled_export(folder, repos=12, layers=5):
    """layers.parquet with the rows of ``repos`` models interleaved (every row group spans every repo)."""
    folder.mkdir()
    table = pa.concat_tables(
        [to_arrow("layers", model_tables(f"org/m{i:02d}", layers=layers, seed=i)["layers"]) for i in range(repos)]
    )
    order = [(i % repos) * layers + i // repos for i in range(table.num_rows)]
    pq.write_table(table.take(order), folder / "layers.parquet", row_group_size=7)
    return table


def test_an_unsorted_import_is_split_by_repo_range_and_sorted(tmp_path, monkeypatch):
    monkeypatch.setattr(transfer, "RANGE_ROWS", 20)
    monkeypatch.setattr(transfer, "constant_columns", lambda table, path: {})  # every column sorted: 20 rows a range
    table = shuffled_export(tmp_path / "export")
    steps = []
    transfer.import_paths(tmp_path / "lake", [tmp_path / "export"], on_step=steps.append)
    ranges = [f"sorting layers, repo range {k} of 3" for k in (1, 2, 3)]
    assert steps == ["checking layers.parquet", *ranges, "committing"]  # what `wwhub lake import` shows on its bar
    root = Lake(tmp_path / "lake").root
    written = segments(root, "layers")
    assert len(written) == 3 and sum(s["rows"] for s in written) == table.num_rows  # 12 repos x 5 rows, 4 per range
    for segment in written:
        repos = pq.read_table(root / segment["file"], columns=["repo_id", "layer_id"]).to_pylist()
        assert repos == sorted(repos, key=lambda r: (r["repo_id"], r["layer_id"]))
        assert (segment["repo_min"], segment["repo_max"]) == (repos[0]["repo_id"], repos[-1]["repo_id"])
    assert all(a["repo_max"] < b["repo_min"] for a, b in zip(written, written[1:], strict=False))
    expected = sorted((r["repo_id"], r["revision"], r["layer_id"], r["alpha"]) for r in table.to_pylist())
    assert [tuple(r.values()) for r in run_query(root, LAYERS)] == expected


def test_columns_of_one_value_are_written_as_it_and_widen_the_ranges(tmp_path, monkeypatch):
    """A shuffled import leaves the columns that hold one value in every row (NULL, NaN, a text or a number) out of
    its sorts and writes them as that value; the sorted rows are narrower, so each repo range holds more of them.
    Two values that compare equal (0.0 and -0.0), NaN beside a number, or one NULL beside a value are not one value."""
    monkeypatch.setattr(transfer, "RANGE_ROWS", 10)
    table = shuffled_export(tmp_path / "export")
    rows = table.num_rows
    nan = float("nan")
    columns = {
        "sigma_mp": [nan] * rows,
        "quantization": ["int8"] * rows,
        "N": [64] * rows,
        "W_scale": [0.0 if i % 2 else -0.0 for i in range(rows)],
        "bulk_max": [nan] * (rows - 1) + [5.0],
        "rf": [1] * (rows - 1) + [None],
    }
    for name, values in columns.items():
        at = table.schema.get_field_index(name)
        table = table.set_column(at, table.schema.field(at), pa.array(values, table.schema.field(at).type))
    order = [(i % 12) * 5 + i // 12 for i in range(rows)]
    pq.write_table(table.take(order), tmp_path / "export" / "layers.parquet", row_group_size=7)
    found = transfer.constant_columns("layers", tmp_path / "export" / "layers.parquet")
    assert found["quantization"] == "int8" and found["N"] == 64 and found["Lambda"] is None
    assert math.isnan(found["sigma_mp"])
    assert not {"W_scale", "bulk_max", "rf", "alpha", "repo_id", "layer_id"} & set(found)
    steps = {}
    for name, constants in (("lake", transfer.constant_columns), ("every column sorted", lambda t, p: {})):
        monkeypatch.setattr(transfer, "constant_columns", constants)
        steps[name] = []
        transfer.import_paths(tmp_path / name, [tmp_path / "export"], on_step=steps[name].append)
    assert len(steps["every column sorted"]) == 2 + 6  # 10 rows a range: 2 repos each
    assert len(steps["lake"]) < len(steps["every column sorted"])
    check = ", ".join(f'"{name}"' for name in ["repo_id", "layer_id", "alpha", *columns, "Lambda", "name"])
    signs = 'signbit("W_scale")'

    def stored(root):
        return sorted(map(repr, run_query(root, f"SELECT {check}, {signs} AS sign FROM layers")))

    source = f"SELECT {check}, {signs} AS sign FROM read_parquet('{tmp_path / 'export' / 'layers.parquet'}')"
    with duckdb.connect() as con:
        cursor = con.execute(source)
        names = [d[0] for d in cursor.description]
        expected = sorted(repr(dict(zip(names, row, strict=True))) for row in cursor.fetchall())
    assert stored(Lake(tmp_path / "lake").root) == expected == stored(Lake(tmp_path / "every column sorted").root)
    assert any("'sign': True" in row for row in expected)  # -0.0 kept its sign


def test_repo_ranges_are_as_few_as_the_bound_allows_and_of_even_sizes():
    def sizes(rows_per_repo, most):
        grouped = transfer.Grouped(("repo_id",), [(f"r{i:06d}", n) for i, n in enumerate(rows_per_repo)])
        index = {f"r{i:06d}": i for i in range(len(rows_per_repo))}
        return [sum(rows_per_repo[index[a] : index[b] + 1]) for a, b in transfer._repo_ranges(grouped, most)]

    assert sizes([5] * 20, 40) == [35, 35, 30]  # not 40 + 40 + 20: three filtered reads either way, evener sorts
    assert sizes([5] * 20, 100) == [100]
    assert sizes([5, 50, 5, 5], 20) == [5, 50, 10]  # a repo larger than the bound alone
    assert sizes([200] * 100_000, 8_137_931) == [6_666_800, 6_666_600, 6_666_600]


def test_an_import_and_a_merge_name_their_steps(tmp_path, monkeypatch):
    monkeypatch.setattr(transfer, "RANGE_ROWS", 20)
    monkeypatch.setattr(transfer, "constant_columns", lambda table, path: {})
    shuffled_export(tmp_path / "export")
    transfer.import_paths(tmp_path / "lake", [tmp_path / "export"])
    # A file clustered by repo (one segment of the lake) is copied, not sorted.
    segment = segments(Lake(tmp_path / "lake").root, "layers")[0]
    clustered = tmp_path / "clustered" / "layers.parquet"
    clustered.parent.mkdir()
    clustered.write_bytes((Lake(tmp_path / "lake").root / segment["file"]).read_bytes())
    steps = []
    transfer.import_paths(tmp_path / "copy", [clustered], on_step=steps.append)
    assert steps == ["checking layers.parquet", "copying layers (clustered by repo)", "committing"]
    steps = []
    transfer.merge(tmp_path / "merged", tmp_path / "lake", on_step=steps.append)
    assert steps == [f"sorting layers, repo range {k} of 3" for k in (1, 2, 3)] + ["committing"]


def test_a_commit_leaves_a_large_segment_with_many_hidden_keys_to_compaction(tmp_path, monkeypatch):
    monkeypatch.setattr(compaction, "FOLD_MAX_ROWS", 30)
    monkeypatch.setattr(compaction, "MAX_HIDDEN_KEYS", 2)
    shuffled_export(tmp_path / "export", repos=10, layers=4)
    lake = Lake(tmp_path / "lake")
    transfer.import_paths(lake.root, [tmp_path / "export"])
    [big] = segments(lake.root, "layers")
    for i in range(4):  # --force rescans of models inside the big segment
        lake.commit_model(f"org/m{i:02d}", "r1", model_tables(f"org/m{i:02d}", layers=2, seed=50 + i))
    after = {s["file"]: s for s in segments(lake.root, "layers")}
    assert big["file"] in after and len(after[big["file"]]["hidden"]) == 4  # not rewritten by any commit
    counts = run_query(lake.root, "SELECT repo_id, count(*) AS n FROM layers GROUP BY 1 ORDER BY 1")
    assert [r["n"] for r in counts] == [2] * 4 + [4] * 6
    steps = []
    compact(lake, on_step=steps.append)
    assert "rewriting layers, part 1 of 1 (48 rows)" in steps  # what `wwhub lake compact` shows on its bar
    assert all(not s["hidden"] for s in segments(lake.root, "layers"))
    assert run_query(lake.root, "SELECT repo_id, count(*) AS n FROM layers GROUP BY 1 ORDER BY 1") == counts


def test_every_segment_has_whole_row_groups_statistics_and_text_dictionaries(tmp_path, monkeypatch):
    """One writer for every segment: row groups of ROW_GROUP_ROWS rows whatever sizes the batches arrive in (DuckDB
    streams its sorted rows in its own), min/max statistics on repo_id (what lookups skip row groups by), and
    dictionaries for the text columns only."""
    monkeypatch.setattr(parquet, "ROW_GROUP_ROWS", 4)
    table = to_arrow(
        "layers", model_tables("org/b", layers=9, seed=1)["layers"] + model_tables("org/a", layers=6)["layers"]
    )
    rows = table.combine_chunks().to_batches()[0]
    batches = [rows.slice(0, 3), rows.slice(3, 0), rows.slice(3, 5), rows.slice(8, 7)]
    path = tmp_path / "segment.parquet"
    assert parquet.write_segment_file(path, "layers", batches) == (15, "org/a", "org/b")
    metadata = pq.ParquetFile(path).metadata
    assert [metadata.row_group(g).num_rows for g in range(metadata.num_row_groups)] == [4, 4, 4, 3]
    assert pq.read_table(path).equals(table)
    names = metadata.schema.names
    first = metadata.row_group(0)
    repo = first.column(names.index("repo_id"))
    assert repo.statistics.has_min_max and (repo.statistics.min, repo.statistics.max) == ("org/b", "org/b")
    dictionary = {names[c] for c in range(len(names)) if "RLE_DICTIONARY" in first.column(c).encodings}
    text = {name for name, kind in SCHEMAS["layers"] if kind == "VARCHAR"}
    assert {"repo_id", "name"} <= dictionary <= text


def test_a_rewrite_may_use_a_quarter_of_the_memory_at_least_two_gigabytes(tmp_path, monkeypatch):
    gib = 1 << 30
    pages = {"SC_PAGE_SIZE": 4096, "SC_PHYS_PAGES": 64 * gib // 4096}
    monkeypatch.setattr(compaction.os, "sysconf", pages.__getitem__)
    limit = tmp_path / "memory.max"
    monkeypatch.setattr(compaction, "CGROUP_MEMORY_LIMIT", limit)
    assert compaction.rewrite_memory() == "16384MiB"  # no cgroup file: a quarter of 64 GiB
    limit.write_text("max\n")
    assert compaction.rewrite_memory() == "16384MiB"  # a cgroup without a limit
    limit.write_text(f"{12 * gib}\n")
    assert compaction.rewrite_memory() == "3072MiB"  # a quarter of the container's 12 GiB
    limit.write_text(f"{4 * gib}\n")
    assert compaction.rewrite_memory() == "2048MiB"  # never below 2 GiB
