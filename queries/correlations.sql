-- correlations: how well each model-averaged weight metric tracks the reported accuracy, per family and pooled
-- across all families (family = '(all)'), as in Martin, Peng & Mahoney, Nature Communications 12:4122 (2021).
-- For each (family, metric) with n >= 3 models: Pearson r; Spearman rho (Pearson r of average ranks, so ties
-- count as scipy.stats.spearmanr counts them); Kendall tau-b (scipy's default); the OLS fit of accuracy on the
-- metric (slope, intercept, R^2, RMSE = root mean squared residual). On the pooled rows, simpsons_paradox is
-- true when the pooled r has the opposite sign of r in most families (with n >= 3): the paradox the study warns of.
-- Columns: family, metric, n, pearson_r, spearman_rho, kendall_tau, slope, intercept, r_squared, rmse,
--   families_agreeing, families_total, simpsons_paradox
WITH board AS (
    SELECT family, repo_id, accuracy, alpha, alpha_weighted, log_alpha_norm, log_spectral_norm, log_norm
    FROM leaderboard WHERE accuracy IS NOT NULL
),
long AS (
    UNPIVOT board ON alpha, alpha_weighted, log_alpha_norm, log_spectral_norm, log_norm
    INTO NAME metric VALUE x
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
    SELECT a.grp, a.metric,
           sum(sign(a.x - b.x) * sign(a.y - b.y)) AS concordance,
           count(*) AS n_pairs,
           count(*) FILTER (WHERE a.x = b.x) AS ties_x,
           count(*) FILTER (WHERE a.y = b.y) AS ties_y
    FROM points a JOIN points b ON a.grp = b.grp AND a.metric = b.metric AND a.repo_id < b.repo_id
    GROUP BY a.grp, a.metric
),
residuals AS (
    SELECT p.grp, p.metric, sqrt(avg(power(p.y - (f.intercept + f.slope * p.x), 2))) AS rmse
    FROM points p JOIN fits f USING (grp, metric) GROUP BY p.grp, p.metric
),
stats AS (
    SELECT f.grp AS family, f.metric, f.n, f.pearson_r, f.spearman_rho,
           q.concordance / sqrt((q.n_pairs - q.ties_x) * (q.n_pairs - q.ties_y)) AS kendall_tau,
           f.slope, f.intercept, f.r_squared, r.rmse
    FROM fits f JOIN pairs q USING (grp, metric) JOIN residuals r USING (grp, metric)
    WHERE f.n >= 3
),
family_signs AS (
    SELECT s.metric,
           count(*) FILTER (WHERE sign(s.pearson_r) = sign(a.pearson_r)) AS families_agreeing,
           count(*) AS families_total
    FROM stats s JOIN stats a ON a.metric = s.metric AND a.family = '(all)'
    WHERE s.family <> '(all)' AND s.pearson_r IS NOT NULL
    GROUP BY s.metric
)
SELECT s.*,
       CASE WHEN s.family = '(all)' THEN g.families_agreeing END AS families_agreeing,
       CASE WHEN s.family = '(all)' THEN g.families_total END AS families_total,
       CASE WHEN s.family = '(all)' THEN coalesce(g.families_agreeing * 2 < g.families_total, false) END
           AS simpsons_paradox
FROM stats s LEFT JOIN family_signs g USING (metric)
ORDER BY s.family = '(all)', s.family, s.metric
