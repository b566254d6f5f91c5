"""The correlations table at lake scale: recomputing it (every family and pooled, p-values, Fisher and bootstrap
intervals, BH, partial and within-family r) vs the SQL it replaced (queries/correlations.sql before issue #12:
r, rho, tau and the OLS fit only, Kendall by a quadratic self-join), on the same synthetic lake, in one run; and
`wwhub leaderboard --family F` as a whole process (start-up included), which reads one family's stored rows.

    python benchmarks/bench_correlations.py [--models 10000] [--families 1000] [--repeat 1]

Issue #10 measured the old SQL at 18.5 s for 10k models on a quiet machine.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flows.lake import Lake, connect  # noqa: E402
from flows.leaderboard.correlations import refresh_correlations  # noqa: E402

# The per-family and pooled statistics as queries/correlations.sql computed them before the correlations table.
OLD_SQL = """
WITH board AS (
    SELECT m.family, m.repo_id, r.value AS accuracy, m.alpha, m.alpha_weighted, m.log_alpha_norm,
           m.log_spectral_norm, m.log_norm
    FROM models_latest m JOIN reported_accuracy r USING (repo_id)
),
long AS (
    UNPIVOT board ON alpha, alpha_weighted, log_alpha_norm, log_spectral_norm, log_norm INTO NAME metric VALUE x
),
points AS (
    SELECT family AS grp, metric, repo_id, x, accuracy AS y FROM long WHERE isfinite(x)
    UNION ALL
    SELECT '(all)' AS grp, metric, repo_id, x, accuracy AS y FROM long WHERE isfinite(x)
),
ranked AS (
    SELECT *,
           (rank() OVER (PARTITION BY grp, metric ORDER BY x)
            + count(*) OVER (PARTITION BY grp, metric ORDER BY x
                             RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)) / 2.0 AS rank_x,
           (rank() OVER (PARTITION BY grp, metric ORDER BY y)
            + count(*) OVER (PARTITION BY grp, metric ORDER BY y
                             RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)) / 2.0 AS rank_y
    FROM points
),
fits AS (
    SELECT grp, metric, count(*) AS n, corr(y, x) AS pearson_r, corr(rank_y, rank_x) AS spearman_rho,
           regr_slope(y, x) AS slope, regr_intercept(y, x) AS intercept, regr_r2(y, x) AS r_squared
    FROM ranked GROUP BY grp, metric
),
pairs AS (
    SELECT a.grp, a.metric, sum(sign(a.x - b.x) * sign(a.y - b.y)) AS concordance, count(*) AS n_pairs,
           count(*) FILTER (WHERE a.x = b.x) AS ties_x, count(*) FILTER (WHERE a.y = b.y) AS ties_y
    FROM points a JOIN points b ON a.grp = b.grp AND a.metric = b.metric AND a.repo_id < b.repo_id
    GROUP BY a.grp, a.metric
)
SELECT f.grp, f.metric, f.n, f.pearson_r, f.spearman_rho,
       q.concordance / sqrt((q.n_pairs - q.ties_x) * (q.n_pairs - q.ties_y)) AS kendall_tau,
       f.slope, f.intercept, f.r_squared
FROM fits f JOIN pairs q USING (grp, metric) WHERE f.n >= 3
"""


def synthetic_lake(root: Path, models: int, families: int) -> Path:
    """One commit of ``models`` scanned models in ``families`` families, each with a card accuracy."""
    lake = Lake.for_writing(root)
    rng = np.random.default_rng(0)
    family = [f"family{i % families}" for i in range(models)]
    repo = [f"org/model{i}" for i in range(models)]
    alpha = rng.normal(3, 0.5, models)
    columns = {
        "repo_id": repo,
        "revision": ["r1"] * models,
        "family": family,
        "status": ["scanned"] * models,
        "alpha": alpha,
        "alpha_weighted": 2 * alpha + rng.normal(0, 0.1, models),
        "log_alpha_norm": alpha + 1 + rng.normal(0, 0.1, models),
        "log_spectral_norm": alpha / 3 + rng.normal(0, 0.1, models),
        "log_norm": np.sqrt(alpha) + rng.normal(0, 0.1, models),
    }
    evals = {
        "repo_id": repo,
        "revision": ["r1"] * models,
        "family": family,
        "source": ["model-index"] * models,
        "metric": ["accuracy"] * models,
        "value": 0.9 - 0.02 * alpha + rng.normal(0, 0.01, models),
        "scale": ["fraction"] * models,
        "dataset": ["bench"] * models,
    }
    lake.commit({"models": pa.table(columns), "evals": pa.table(evals)})
    return lake.root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, default=10_000)
    parser.add_argument("--families", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = synthetic_lake(Path(tmp) / "lake", args.models, args.families)
        ours, old, board = [], [], []
        for _ in range(args.repeat):
            start = time.perf_counter()
            rows = refresh_correlations(root)
            ours.append(time.perf_counter() - start)
            con = connect(Lake.open(root))
            try:
                start = time.perf_counter()
                old_rows = len(con.execute(OLD_SQL).fetchall())
                old.append(time.perf_counter() - start)
            finally:
                con.close()
            command = [sys.executable, "-m", "flows", "leaderboard", "--lake", str(root), "--family", "family7"]
            start = time.perf_counter()
            subprocess.run(command + ["--format", "csv"], check=True, capture_output=True, env=os.environ.copy())
            board.append(time.perf_counter() - start)
        print(f"lake: {args.models} models in {args.families} families; {rows} correlation rows ({old_rows} before)")
        print(f"correlations table (p-values, intervals, confounders): {min(ours):.2f} s")
        print(f"SQL it replaced (estimates only, Kendall self-join):   {min(old):.2f} s")
        print(f"ratio new/old: {min(ours) / min(old):.2f}x")
        print(f"wwhub leaderboard --family family7 (whole process):     {min(board):.2f} s")


if __name__ == "__main__":
    main()
