"""Incremental correlations: after a change to one family, recomputing that family and the pooled rows gives the
table a full recomputation gives, and the other families' rows are the stored ones."""

import numpy as np

from flows.lake import Lake
from flows.lake.sql import run_query
from flows.leaderboard.correlations import families_with_reported_values, refresh_correlations
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
    add_model(Lake(root), "fam2", "org/fam2-unannounced", 3.0, 0.5, 10**9)
    add_model(Lake(root), "fam3", "org/fam3-new", 3.0, 0.5, 10**9)

    refresh_correlations(root, ["fam3"])
    rows = {(r["family"], r["metric"]): r["n"] for r in _table(root)}
    assert rows[("fam2", "alpha")] == stored[("fam2", "alpha")]  # not recomputed: not named
    assert rows[("fam3", "alpha")] == stored[("fam3", "alpha")] + 1
    assert rows[("(all)", "alpha")] == stored[("(all)", "alpha")] + 2  # pooled rows always see every model


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
