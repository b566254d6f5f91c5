"""Incremental correlations: after a change to one family, recomputing that family and the pooled rows gives the
table a full recomputation gives, and the other families' rows are the stored ones."""

import numpy as np

from flows.lake import Lake
from flows.lake.sql import run_query
from flows.leaderboard.correlations import (
    families_with_reported_values,
    read_all_correlations,
    refresh_correlations,
)
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

    refresh_correlations(root, {"fam1"})
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
    marked = [dict(r, notes="stored") if r["family"] == "fam2" else r for r in read_all_correlations(root)]
    Lake(root).replace_derived("correlations", marked)
    add_model(Lake(root), "fam3", "org/fam3-new", 3.0, 0.5, 10**9)

    refresh_correlations(root, ["fam3"])
    rows = _table(root)
    assert {r["notes"] for r in rows if r["family"] == "fam2"} == {"stored"}  # read back, not recomputed
    assert all(r["notes"] != "stored" for r in rows if r["family"] != "fam2")
    counts = {(r["family"], r["metric"]): r["n"] for r in rows}
    assert counts[("fam3", "alpha")] == stored[("fam3", "alpha")] + 1
    assert counts[("(all)", "alpha")] == stored[("(all)", "alpha")] + 1


def test_a_family_whose_count_changed_unannounced_is_recomputed(tmp_path):
    root = write_lake(tmp_path / "lake", _models(7))
    add_model(Lake(root), "fam2", "org/fam2-unannounced", 3.0, 0.5, 10**9)
    refresh_correlations(root, ["fam3"])
    incremental = _table(root)
    refresh_correlations(root)
    assert incremental == _table(root)


def test_a_lake_without_stored_rows_is_refreshed_in_full(tmp_path):
    root = write_lake(tmp_path / "lake", _models(3))
    full = _table(root)
    Lake(root).replace_derived("correlations", [])
    refresh_correlations(root, {"fam0"})
    assert _table(root) == full


def test_only_families_of_repos_with_reported_values_are_refreshed(tmp_path):
    root = write_lake(tmp_path / "lake", _models(4))
    plain = dict(repo_id="org/plain", revision="r1", family="plainfam", status="scanned", alpha=3.0)
    Lake(root).commit_model("org/plain", "r1", {"models": [plain]})
    family_of = {"org/plain": "plainfam", "org/fam2-1": "fam2", "org/unknown": "nofam"}
    assert families_with_reported_values(root, family_of) == {"fam2"}
    assert families_with_reported_values(root, {}) == set()


def test_a_model_rescanned_into_another_family_leaves_its_old_family(tmp_path):
    root = write_lake(tmp_path / "lake", _models(5))
    before = {(r["family"], r["metric"]): r["n"] for r in _table(root)}
    # The same commit rescanned with --force after families.yaml moved it: its row is replaced, fam0 is not named.
    add_model(Lake(root), "fam1", "org/fam0-0", 4.0, 0.7, 10**9)

    refresh_correlations(root, {"fam1"})
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

    refresh_correlations(root, {"fam2"})
    incremental = _table(root)
    assert not any(r["family"] == "fam3" for r in incremental)
    refresh_correlations(root)
    assert incremental == _table(root)
