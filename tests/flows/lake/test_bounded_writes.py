"""Bounded work per write: an import in any row order becomes segments sorted by repo, split by repo range above a
size; a commit never rewrites a segment larger than the fold bound, however many of its rows it hides."""

from __future__ import annotations

import json

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


def test_an_import_and_a_merge_name_their_steps(tmp_path, monkeypatch):
    monkeypatch.setattr(transfer, "RANGE_ROWS", 20)
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
