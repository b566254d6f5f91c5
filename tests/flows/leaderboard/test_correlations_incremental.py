"""Incremental correlations: after a change to a few models, recomputing their families and the pooled rows (from
the cache of points and rank states, or without it) gives the table a full recomputation gives, and the other
families' rows are the stored ones."""

import math

import numpy as np

from flows.cli import main
from flows.lake import Lake
from flows.lake.sql import run_query
from flows.leaderboard.correlations import CACHE, SEEN, cache_facts, refresh_correlations
from tests.flows.lakes import add_model, write_lake


def _models(seed, families=4, per_family=6):
    rng = np.random.default_rng(seed)
    return [
        (f"fam{f}", f"org/fam{f}-{i}", float(2 + rng.random() * 3), float(0.3 + rng.random() * 0.6), 10 ** (8 + f))
        for f in range(families)
        for i in range(per_family)
    ]


def _table(root):
    rows = run_query(root, "SELECT * FROM correlations ORDER BY reported_metric, family, metric")
    assert rows
    return rows


def test_incremental_refresh_equals_a_full_one(tmp_path):
    root = write_lake(tmp_path / "lake", _models(1))
    before = {(r["family"], r["metric"]): r for r in _table(root)}
    add_model(Lake(root), "fam1", "org/fam1-new", 9.0, 0.95, 10**9)

    refresh_correlations(root, {"org/fam1-new"})
    incremental = _table(root)
    refresh_correlations(root)
    full = _table(root)

    assert incremental == full
    after = {(r["family"], r["metric"]): r for r in full}
    assert after[("fam1", "alpha")]["n"] == before[("fam1", "alpha")]["n"] + 1
    assert after[("(all)", "alpha")]["n"] == before[("(all)", "alpha")]["n"] + 1
    for key, row in before.items():  # untouched families: the same statistics (only the BH adjustment follows)
        if key[0] in ("fam0", "fam2", "fam3"):
            changing = ("pearson_p_adjusted", "verdict")
            assert {k: v for k, v in row.items() if k not in changing} == {
                k: v for k, v in after[key].items() if k not in changing
            }


def test_families_not_named_keep_their_stored_rows(tmp_path):
    root = write_lake(tmp_path / "lake", _models(2))
    stored = {(r["family"], r["metric"]): r["n"] for r in _table(root)}
    marked = [dict(r, notes="stored") if r["family"] == "fam2" else r for r in run_query(root, "correlations")]
    Lake(root).replace_derived("correlations", marked)
    add_model(Lake(root), "fam3", "org/fam3-new", 3.0, 0.5, 10**9)

    (root / CACHE).unlink()  # the marked rows are not what the cache was computed with
    refresh_correlations(root, ["org/fam3-new"])
    rows = _table(root)
    assert {r["notes"] for r in rows if r["family"] == "fam2"} == {"stored"}  # read back, not recomputed
    assert all(r["notes"] != "stored" for r in rows if r["family"] != "fam2")
    counts = {(r["family"], r["metric"]): r["n"] for r in rows}
    assert counts[("fam3", "alpha")] == stored[("fam3", "alpha")] + 1
    assert counts[("(all)", "alpha")] == stored[("(all)", "alpha")] + 1


def test_a_family_whose_count_changed_unannounced_is_recomputed(tmp_path):
    root = write_lake(tmp_path / "lake", _models(7))
    add_model(Lake(root), "fam2", "org/fam2-unannounced", 3.0, 0.5, 10**9)
    add_model(Lake(root), "fam3", "org/fam3-announced", 3.5, 0.6, 10**9)
    (root / CACHE).unlink()  # without the cache, the stored counts tell which families changed
    refresh_correlations(root, ["org/fam3-announced"])
    incremental = _table(root)
    refresh_correlations(root)
    assert incremental == _table(root)


def test_a_lake_without_stored_rows_is_refreshed_in_full(tmp_path):
    root = write_lake(tmp_path / "lake", _models(3))
    full = _table(root)
    Lake(root).replace_derived("correlations", [])
    refresh_correlations(root, {"org/fam0-0"})
    assert _table(root) == full


def test_models_without_reported_values_commit_nothing(tmp_path):
    root = write_lake(tmp_path / "lake", _models(4))
    version = Lake(root).snapshot().version
    plain = dict(repo_id="org/plain", revision="r1", family="plainfam", status="scanned", alpha=3.0)
    Lake(root).commit_model("org/plain", "r1", {"models": [plain]})
    after_scan = Lake(root).snapshot().version
    assert after_scan > version
    refresh_correlations(root, {"org/plain", "org/unknown"})
    assert Lake(root).snapshot().version == after_scan
    (root / CACHE).unlink()
    refresh_correlations(root, {"org/plain"})
    assert Lake(root).snapshot().version == after_scan


def test_a_model_rescanned_into_another_family_leaves_its_old_family(tmp_path):
    root = write_lake(tmp_path / "lake", _models(5))
    before = {(r["family"], r["metric"]): r["n"] for r in _table(root)}
    # The same commit rescanned with --force after families.yaml moved it: its row is replaced, fam0 is not named.
    add_model(Lake(root), "fam1", "org/fam0-0", 4.0, 0.7, 10**9)

    refresh_correlations(root, {"org/fam0-0"})
    incremental = _table(root)
    refresh_correlations(root)
    assert incremental == _table(root)
    after = {(r["family"], r["metric"]): r["n"] for r in incremental}
    assert after[("fam0", "alpha")] == before[("fam0", "alpha")] - 1
    assert after[("fam1", "alpha")] == before[("fam1", "alpha")] + 1


def test_a_family_every_model_left_loses_its_rows(tmp_path):
    models = [m for m in _models(6) if m[0] != "fam3" or m[1].endswith(("-0", "-1", "-2"))]
    root = write_lake(tmp_path / "lake", models)
    assert any(r["family"] == "fam3" for r in _table(root))
    for i in range(3):
        add_model(Lake(root), "fam2", f"org/fam3-{i}", 3.0 + i, 0.5, 10**9)

    refresh_correlations(root, {f"org/fam3-{i}" for i in range(3)})
    incremental = _table(root)
    assert not any(r["family"] == "fam3" for r in incremental)
    refresh_correlations(root)
    assert incremental == _table(root)


def _full_table_of_a_copy(root, tmp_path, name):
    """The table a full refresh gives, computed in a copy of the lake (the original keeps its cache chain)."""
    import shutil

    copy = tmp_path / name
    shutil.copytree(root, copy)
    refresh_correlations(copy)
    return _table(copy)


def test_a_reported_metric_none_of_whose_points_moved_keeps_its_rows(tmp_path, monkeypatch):
    """A lake reports many metrics; a scan moves the points of some. The others' rows (their pooled rows
    included) stand as stored, with nothing recomputed, and the table is still the full refresh's."""
    from flows.leaderboard import stats

    lake = Lake.for_writing(tmp_path / "lake")
    for metric, seed in (("accuracy", 14), ("f1", 15), ("perplexity", 16)):
        for family, repo, alpha, value, size in _models(seed, families=3, per_family=5):
            add_model(lake, family, f"{repo}-{metric}", alpha, value, size, metric=metric)
    refresh_correlations(lake.root)
    computed = []
    real = stats.group_rows
    monkeypatch.setattr(stats, "group_rows", lambda *a, **k: computed.append(k["label"]) or real(*a, **k))
    add_model(lake, "fam1", "org/fam1-new", 9.0, 0.95, 10**9, metric="f1")
    refresh_correlations(lake.root, {"org/fam1-new"})
    assert computed == ["f1"]
    assert _table(lake.root) == _full_table_of_a_copy(lake.root, tmp_path, "full")
    computed.clear()
    add_model(lake, "fam0", "org/fam0-0-accuracy", 1.5, 0.2, 10**8, metric="accuracy")  # a rescan moves a point
    add_model(lake, "fam2", "org/fam2-new", 2.5, 0.5, 10**8, metric="perplexity")
    refresh_correlations(lake.root, {"org/fam0-0-accuracy", "org/fam2-new"})
    assert sorted(computed) == ["accuracy", "perplexity"]
    assert _table(lake.root) == _full_table_of_a_copy(lake.root, tmp_path, "full-2")


def test_a_chain_of_incremental_refreshes_equals_full_ones(tmp_path, monkeypatch):
    """Scans of a few models after one another, each refreshed from the cache (pooled rank states updated point by
    point; past MAX_POINT_UPDATES rebuilt): new models, rescans with new values, moves between families, a value
    that stops being a point, a metric that becomes NaN, a new reported metric. After each, the table equals a
    full refresh's, to the last bit; Fieller-Hartley-Pearson and bootstrap pooled rows both."""
    from flows.leaderboard import stats

    monkeypatch.setattr(stats, "BOOTSTRAP_MAX_N", 20)  # the pooled rows use the large-group intervals from 21 on
    rng = np.random.default_rng(11)
    root = write_lake(tmp_path / "lake", _models(11, families=4, per_family=5))
    lake = Lake(root)
    steps = [
        [("fam0", "org/new-0", 3.3, 0.71), ("fam1", "org/new-1", 2.2, 0.64)],
        [("fam2", "org/fam0-1", 4.1, 0.5)],  # moved from fam0
        [("fam1", "org/fam1-2", 4.1, 0.5)],  # same alpha as above: ties across families
        [("fam3", "org/fam3-0", 3.0, math.nan)],  # its reported value is no longer a number: no longer a point
        [("fam0", f"org/bulk-{i}", float(rng.uniform(2, 5)), float(rng.uniform(0.3, 0.9))) for i in range(40)],
        [("fam2", "org/fam2-3", math.nan, 0.8)],  # no alpha: a point of no row
        [("fam4", "org/other-0", 2.5, 0.4, "f1"), ("fam4", "org/other-1", 2.7, 0.5, "f1")],
    ]
    for number, step in enumerate(steps):
        for family, repo, alpha, value, *metric in step:
            add_model(lake, family, repo, alpha, value, 10**9, *(metric or ["accuracy"]))
        refresh_correlations(root, {repo for _, repo, *_ in step})
        assert _table(root) == _full_table_of_a_copy(root, tmp_path, f"full-{number}"), f"step {number}"


def test_a_cache_that_does_not_match_the_table_is_not_used(tmp_path):
    """A cache written for another version of the table (a crash between the two writes, a table replaced by hand)
    or cut short is ignored: the refresh reads every point and gives the full table."""
    root = write_lake(tmp_path / "lake", _models(12))
    stale = (root / CACHE).read_bytes()
    add_model(Lake(root), "fam1", "org/fam1-new", 9.0, 0.95, 10**9)
    refresh_correlations(root, {"org/fam1-new"})
    add_model(Lake(root), "fam2", "org/fam2-new", 1.0, 0.15, 10**9)
    (root / CACHE).write_bytes(stale)  # computed before org/fam1-new came in
    refresh_correlations(root, {"org/fam2-new"})
    assert _table(root) == _full_table_of_a_copy(root, tmp_path, "full-stale")
    add_model(Lake(root), "fam3", "org/fam3-new", 2.0, 0.25, 10**9)
    (root / CACHE).write_bytes((root / CACHE).read_bytes()[:1000])
    refresh_correlations(root, {"org/fam3-new"})
    assert _table(root) == _full_table_of_a_copy(root, tmp_path, "full-cut")


def test_any_mix_of_old_and_new_cache_and_seen_record_gives_the_full_table(tmp_path):
    """The cache and its record of the segments it has seen are renamed into place without an fsync: after a power
    cut either may be an older version, or gone. Every such mix makes the next refresh read more points, never
    store another table than a full recomputation."""
    root = write_lake(tmp_path / "lake", _models(13))
    refresh_correlations(root)
    old = {name: (root / name).read_bytes() for name in (CACHE, SEEN)}
    add_model(Lake(root), "fam1", "org/fam1-new", 9.0, 0.95, 10**9)
    refresh_correlations(root, {"org/fam1-new"})
    new = {name: (root / name).read_bytes() for name in (CACHE, SEEN)}
    mixes = [
        (old[CACHE], new[SEEN]),
        (new[CACHE], old[SEEN]),
        (old[CACHE], old[SEEN]),
        (new[CACHE], None),
        (None, new[SEEN]),
    ]
    for k, (cache, seen) in enumerate(mixes):
        for name, content in ((CACHE, cache), (SEEN, seen)):
            (root / name).unlink(missing_ok=True)
            if content is not None:
                (root / name).write_bytes(content)
        add_model(Lake(root), "fam2", f"org/fam2-new{k}", 1.0 + k, 0.15 + k / 10, 10**9)
        refresh_correlations(root, {f"org/fam2-new{k}"})
        assert _table(root) == _full_table_of_a_copy(root, tmp_path, f"full-mix{k}")


def test_lake_info_says_whether_the_cache_is_current(tmp_path, capsys):
    root = write_lake(tmp_path / "lake", _models(13))
    facts = cache_facts(root)
    assert facts["current"] and facts["points"] == 4 * 6 and facts["bytes"] == (root / CACHE).stat().st_size
    assert main(["lake", "info", "--lake", str(root)]) == 0
    assert "correlations cache: 24 points" in capsys.readouterr().out
    (root / CACHE).write_bytes((root / CACHE).read_bytes()[:1000])
    assert cache_facts(root) == {"file": str(root / CACHE), "bytes": 1000, "current": False}
    assert main(["lake", "info", "--lake", str(root), "--format", "json"]) == 0
    assert '"current": false' in capsys.readouterr().out
    refresh_correlations(root)  # a full refresh writes a current cache again
    assert cache_facts(root)["current"]
    (root / CACHE).unlink()
    assert cache_facts(root) is None
    assert main(["lake", "info", "--lake", str(root)]) == 0
    assert "correlations cache: none" in capsys.readouterr().out


def test_a_refresh_from_the_cache_reads_only_the_changed_models(tmp_path, monkeypatch):
    from flows.leaderboard import correlations

    root = write_lake(tmp_path / "lake", _models(13))
    read = []
    real = correlations._points
    monkeypatch.setattr(correlations, "_points", lambda *a, **k: read.append(k.get("repos")) or real(*a, **k))
    add_model(Lake(root), "fam1", "org/fam1-new", 9.0, 0.95, 10**9)
    refresh_correlations(root, {"org/fam1-new"})
    assert read == [["org/fam1-new"]]


def test_a_rescan_that_moves_no_point_commits_nothing(tmp_path):
    """A new commit with the same weights and card (a README edit) is rescanned: its point is the one the table
    was computed with, so the table stays as it is; a changed reported value is refreshed."""
    root = write_lake(tmp_path / "lake", _models(14))
    family, repo, alpha, value, size = _models(14)[7]
    add_model(Lake(root), family, repo, alpha, value, size)
    version = Lake(root).snapshot().version
    refresh_correlations(root, {repo})
    assert Lake(root).snapshot().version == version
    add_model(Lake(root), family, repo, alpha, value + 0.01, size)
    refresh_correlations(root, {repo})
    assert Lake(root).snapshot().version > version + 1
    assert _table(root) == _full_table_of_a_copy(root, tmp_path, "full")


def test_two_refreshes_at_once_each_build_on_the_other(tmp_path, monkeypatch):
    """Two scans finish together and refresh for their own models: the second waits for the first's table and
    cache, so neither model's point is lost (without the lock both would start from the same table)."""
    import threading
    import time

    from flows.leaderboard import correlations

    root = write_lake(tmp_path / "lake", _models(15))
    add_model(Lake(root), "fam0", "org/first", 9.0, 0.95, 10**9)
    add_model(Lake(root), "fam3", "org/second", 1.0, 0.05, 10**9)
    real = correlations._read_cache

    def slow_read(*args):
        found = real(*args)
        time.sleep(0.3)  # the other refresh gets every chance to read the same table meanwhile
        return found

    monkeypatch.setattr(correlations, "_read_cache", slow_read)
    threads = [threading.Thread(target=refresh_correlations, args=(root, {r})) for r in ("org/first", "org/second")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert _table(root) == _full_table_of_a_copy(root, tmp_path, "full")


def test_a_scan_killed_before_its_refresh_loses_no_point(tmp_path):
    """Models committed by a scan that died before refreshing are taken up by the next refresh, whatever repos it
    names: their segments are not among those the cache has seen."""
    root = write_lake(tmp_path / "lake", _models(16))
    add_model(Lake(root), "fam2", "org/orphan", 8.0, 0.9, 10**9)  # committed, never refreshed
    add_model(Lake(root), "fam1", "org/next", 2.0, 0.3, 10**9)
    refresh_correlations(root, {"org/next"})
    rows = {(r["family"], r["metric"]): r for r in _table(root)}
    assert _table(root) == _full_table_of_a_copy(root, tmp_path, "full")
    assert rows[("fam2", "alpha")]["n"] == 7  # six, and the orphan


def test_folded_segments_are_taken_up_without_recomputing_what_did_not_move(tmp_path, monkeypatch):
    """Each commit of one model folds, every sixteen, into a segment of many repos the cache has not seen: their
    points are compared, only the moved ones recomputed, and the table stays a full refresh's."""
    from flows.leaderboard import correlations

    root = write_lake(tmp_path / "lake", _models(17))
    updated = []
    real = correlations._updated
    monkeypatch.setattr(correlations, "_updated", lambda c, s, moved, n: updated.append(moved) or real(c, s, moved, n))
    folds_before = len(Lake(root).snapshot().tables["models"])
    for i in range(20):
        add_model(Lake(root), f"fam{i % 4}", f"org/more-{i:02d}", 2 + i / 10, 0.4 + i / 50, 10**9)
        refresh_correlations(root, {f"org/more-{i:02d}"})
    assert len(Lake(root).snapshot().tables["models"]) < folds_before + 20  # some commits were folded
    assert all(len(moved) == 1 for moved in updated)  # never more than the scanned model
    assert _table(root) == _full_table_of_a_copy(root, tmp_path, "full")


def test_splices_of_points_and_ranks_equal_numpy_delete_then_insert():
    """The cache's points and rank arrays are spliced by slices (no index array over every point; the ranks in
    place): the same rows as np.delete then np.insert, for random removals and insertions, at the ends and in runs."""
    import bisect

    import pyarrow as pa

    from flows.leaderboard.correlations import _Keys, _splice_in_place, _spliced

    rng = np.random.default_rng(0)
    for _ in range(500):
        n = int(rng.integers(0, 30))
        old = rng.random(n)
        removed = np.sort(rng.choice(n, size=int(rng.integers(0, n + 1)), replace=False)).astype(np.int64)
        where = np.sort(rng.integers(0, n - removed.size + 1, size=int(rng.integers(0, 5))))
        expected = np.insert(np.delete(old, removed), where, np.nan)
        buffer = np.full(n + where.size + int(rng.integers(0, 3)), -1.0)
        buffer[:n] = old
        assert np.array_equal(_splice_in_place(buffer, n, removed, where), expected, equal_nan=True)
        new = rng.random(where.size) + 10
        table = _spliced(pa.table({"v": old}), removed, pa.table({"v": new}), where)
        assert np.array_equal(table.column("v").to_numpy(), np.insert(np.delete(old, removed), where, new))
        names = pa.table({"family": [f"f{i:02d}" for i in range(n)], "repo_id": [f"r{i:02d}" for i in range(n)]})
        kept = [(f"f{i:02d}", f"r{i:02d}") for i in np.delete(np.arange(n), removed)]
        keys = _Keys(names, removed)
        assert [keys[i] for i in range(len(keys))] == kept
        assert bisect.bisect_left(keys, ("f99", "r99")) == len(kept)
