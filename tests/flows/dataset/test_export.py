"""`wwhub lake export`: the lake as a Hugging Face dataset folder, loaded back with the `datasets` library itself."""

from __future__ import annotations

import pytest
import yaml

from flows.cli import main
from flows.dataset import CONFIGS, ExportOptions, export_dataset
from flows.dataset.card import UNDOCUMENTED
from flows.dataset.columns import TABLE_COLUMNS
from flows.lake.schema import column_names
from flows.lake.sql import run_query
from tests.flows.lakes import write_lake, write_site_lake

TABLES = ("models", "layers", "evals", "distances", "scans")


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    return write_site_lake(tmp_path_factory.mktemp("export") / "lake")


def load(folder, config, cache):
    import datasets

    datasets.disable_progress_bars()
    return datasets.load_dataset(str(folder), config, split="train", cache_dir=str(cache))


def expected(lake, config: str, latest_only: bool = False) -> tuple[int, list[str]]:
    """(rows, columns) the config must hold, asked of the lake directly."""
    if config in TABLES:
        where = ""
        if latest_only and config != "scans":
            where = " WHERE (repo_id, revision) IN (SELECT repo_id, revision FROM models_latest)"
            where += " OR revision IS NULL" if config == "evals" else ""
        return run_query(lake, f"SELECT count(*) AS n FROM {config}{where}")[0]["n"], column_names(config)
    rows = run_query(lake, config, {"metric": "accuracy"})
    return len(rows), list(rows[0])


def test_datasets_loads_every_config_with_the_lakes_rows_and_columns(lake, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "dataset"
    assert main(["lake", "export", str(out), "--lake", str(lake), "--repo-id", "acme/wwhub-lake"]) == 0
    printed = capsys.readouterr().out
    assert "publish with: hf upload acme/wwhub-lake" in printed and "--repo-type dataset" in printed
    card = (out / "README.md").read_text()
    meta = yaml.safe_load(card.split("---\n")[1])
    assert [c["config_name"] for c in meta["configs"]] == [c.name for c in CONFIGS]
    for config in CONFIGS:
        rows, columns = expected(lake, config.name)
        loaded = load(out, config.name, tmp_path / "cache")
        assert loaded.num_rows == rows > 0, config.name
        assert loaded.column_names == columns, config.name
    assert "datasets/acme/wwhub-lake/data/leaderboard/*.parquet" in card  # the DuckDB example, filled in
    assert 'load_dataset("acme/wwhub-lake", "layers"' in card
    assert UNDOCUMENTED not in card


def test_latest_only_keeps_each_repos_latest_scan_and_the_imports(lake, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    out = tmp_path / "dataset"
    assert main(["lake", "export", str(out), "--lake", str(lake), "--latest-only"]) == 0
    repos = run_query(lake, "SELECT count(DISTINCT repo_id) AS n FROM models")[0]["n"]
    assert load(out, "models", tmp_path / "cache").num_rows == repos == 9
    for config in ("layers", "evals", "distances"):
        rows, _ = expected(lake, config, latest_only=True)
        all_rows, _ = expected(lake, config)
        assert load(out, config, tmp_path / "cache").num_rows == rows, config
        if config != "distances":
            assert rows < all_rows, config  # org/base's first commit is left out
    assert "each repo's latest scan only (`--latest-only`)" in (out / "README.md").read_text()


def test_large_tables_come_in_several_files_of_bounded_size(lake, tmp_path):
    import pyarrow.parquet as pq

    bound = 20_000
    export = export_dataset(lake, tmp_path / "dataset", ExportOptions(max_file_bytes=bound, batch_rows=8))
    layers = next(t for t in export.tables if t.config.name == "layers")
    files = [tmp_path / "dataset" / f for f in layers.files]
    assert len(files) >= 2
    assert [f.name for f in files] == [f"train-{i:05d}-of-{len(files):05d}.parquet" for i in range(len(files))]
    # A file gathers batches of 8 rows until its data reaches the bound, then closes (its footer, a few KB of
    # schema and row-group statistics for 50 columns, comes on top): never far past it.
    for f in files[:-1]:
        assert pq.read_metadata(f).num_row_groups >= 2 and bound <= f.stat().st_size < 3 * bound
    assert sum(pq.read_metadata(f).num_rows for f in files) == layers.rows == expected(lake, "layers")[0]


def test_every_exported_column_has_its_meaning_in_the_card():
    for table in TABLES:
        missing = [c for c in column_names(table) if c not in TABLE_COLUMNS[table]]
        assert missing == [], f"{table}: describe {missing} in flows/dataset/columns.py"


def test_an_empty_table_is_no_config_and_a_new_export_keeps_other_files(lake, tmp_path):
    out = tmp_path / "dataset"
    (out / "data" / "stale").mkdir(parents=True)
    (out / ".gitattributes").write_text("*.parquet filter=lfs\n")  # a clone of the dataset repo keeps its files
    export_dataset(lake, out)
    assert (out / ".gitattributes").exists() and not (out / "data" / "stale").exists()
    assert sorted(p.name for p in (out / "data").iterdir()) == sorted(c.name for c in CONFIGS)

    bare = write_lake(tmp_path / "bare", [("fam", f"org/m{i}", 2.0 + i, 0.9 - i / 10, 1000) for i in range(3)])
    export = export_dataset(bare, tmp_path / "bare-dataset")
    empty = {t.config.name for t in export.tables if not t.rows}
    # `datasets` cannot load an empty split: no config for them
    assert empty == {"layers", "distances", "scans", "attempts", "memberships"}
    card = (tmp_path / "bare-dataset" / "README.md").read_text()
    meta = yaml.safe_load(card.split("---\n")[1])
    assert {c["config_name"] for c in meta["configs"]} == {c.name for c in CONFIGS} - empty
    assert not (tmp_path / "bare-dataset" / "data" / "layers").exists()
    assert card.count("(no rows in this lake: no config)") == 5
