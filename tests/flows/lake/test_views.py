"""wwhub's own SQL carries the views it reads as common table expressions (``with_views``): the same rows as over
created views, for every named query, every table and ``models_latest``, over the whole lake and over a few repos."""

from __future__ import annotations

import math

import duckdb
import pytest

from flows.lake import QUERIES_DIR, Lake, connect
from flows.lake.sql import resolve, run_query
from flows.lake.views import query_files, with_views
from flows.leaderboard.correlations import refresh_correlations
from tests.flows.lake.synth import fill

NAMES = sorted(query_files()) + ["layers", "models", "evals", "esd", "models_latest", "correlations"]
VARIABLES = {"metric": "accuracy", "prefer_import": False, "repo_id": "org/m0000", "layer_id": 1, "family": "fam0"}


@pytest.fixture(scope="module")
def lake(tmp_path_factory) -> Lake:
    lake = Lake.for_writing(tmp_path_factory.mktemp("views") / "lake")
    fill(lake, 9, layers=3, family_of=lambda i: f"fam{i % 2}")
    fill(lake, 2, layers=3, seed=50, family_of=lambda i: "fam0")  # rescans: hidden rows in older segments
    refresh_correlations(lake.root)
    return lake


def _comparable(rows: list[tuple]) -> list[str]:
    return sorted(repr(tuple(None if isinstance(v, float) and math.isnan(v) else v for v in row)) for row in rows)


def outcome(con, sql: str) -> tuple[str, list[str]]:
    """("rows", the rows in a comparable form) or ("error", DuckDB's error type): a named query may need a variable
    this test does not set, and must then fail alike on both paths."""
    for name, value in VARIABLES.items():
        con.execute(f"SET VARIABLE {name} = ?", [value])
    try:
        return "rows", _comparable(con.execute(sql).fetchall())
    except duckdb.Error as err:
        return "error", [type(err).__name__]


@pytest.mark.parametrize("repos", [None, ["org/m0000", "org/m0003"]], ids=["whole lake", "two repos"])
@pytest.mark.parametrize("name", NAMES)
def test_inlined_views_give_the_rows_of_created_views(lake, name, repos):
    sql = resolve(name)
    snapshot = lake.snapshot()
    prefix = str(lake.root) + "/"
    with connect(lake, snapshot, reading=sql, repos=repos) as con:
        over_views = outcome(con, sql)
    with connect(lake, snapshot, repos=repos, views=False) as con:
        inlined = outcome(con, with_views(snapshot, sql, prefix, repos))
    assert inlined == over_views
    if name in ("models_latest", "layers", "leaderboard"):
        assert over_views[0] == "rows" and over_views[1]


def test_a_statement_that_starts_with_its_own_expressions_keeps_them(lake):
    snapshot = lake.snapshot()
    own = "-- the newest scan per family\nWITH newest AS (SELECT family, max(scanned_at) AS at FROM models GROUP BY 1)"
    sql = own + " SELECT family FROM newest ORDER BY family"
    inlined = with_views(snapshot, sql, str(lake.root) + "/")
    assert inlined.startswith("WITH models AS NOT MATERIALIZED (")
    assert "newest AS (SELECT family" in inlined
    assert run_query(lake.root, sql) == [{"family": "fam0"}, {"family": "fam1"}]
    counting = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3) SELECT count(*) AS c FROM n"
    assert with_views(snapshot, counting).startswith("WITH RECURSIVE n(i)")  # it reads no view: unchanged
    recursive = counting.replace("FROM n", "FROM n, (SELECT count(*) AS m FROM models) t", 1)
    assert with_views(snapshot, recursive).startswith("WITH RECURSIVE models AS NOT MATERIALIZED (")
    assert run_query(lake.root, recursive) == [{"c": 3}]


def test_a_users_query_still_runs_over_created_views(lake):
    """A user's SQL may be an EXPLAIN, or name its own expression after a table; both keep working."""
    shadowing = "WITH models AS (SELECT 'mine' AS repo_id) SELECT repo_id FROM models"
    assert run_query(lake.root, shadowing, user=True) == [{"repo_id": "mine"}]
    assert run_query(lake.root, "EXPLAIN SELECT count(*) FROM layers", user=True)
    assert QUERIES_DIR.is_dir()
