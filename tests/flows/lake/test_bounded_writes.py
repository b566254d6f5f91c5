"""Bounded work per write: an import in any row order becomes segments sorted by repo, split by repo range above a
size; a commit never rewrites a segment larger than the fold bound, however many of its rows it hides."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq

from flows.lake import MANIFEST, Lake, compaction, transfer
from flows.lake.compaction import compact
from flows.lake.schema import to_arrow
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
    transfer.import_paths(tmp_path / "lake", [tmp_path / "export"])
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
    compact(lake)
    assert all(not s["hidden"] for s in segments(lake.root, "layers"))
    assert run_query(lake.root, "SELECT repo_id, count(*) AS n FROM layers GROUP BY 1 ORDER BY 1") == counts
