-- site_evals: every reported value a model page lists: the eval rows of each repo's latest scan (its card at that
-- commit) and the imported rows (no commit: they apply to every scan), with `chosen` true for the row that
-- reported_values.sql picks for leaderboards and correlations (default precedence).
-- Columns: repo_id, source, task, dataset, split, metric, raw_metric, value, scale, n_shot, stderr, chosen
SELECT e.repo_id, e.source, e.task, e.dataset, e.split, e.metric, e.raw_metric, e.value, e.scale, e.n_shot,
       e.stderr,
       coalesce(r.source = e.source AND r.dataset IS NOT DISTINCT FROM e.dataset
                AND r.split IS NOT DISTINCT FROM e.split, false) AS chosen
FROM models_latest m
JOIN evals e ON e.repo_id = m.repo_id AND (e.revision = m.revision OR e.revision IS NULL)
LEFT JOIN reported_values r ON r.repo_id = e.repo_id AND r.metric = e.metric
ORDER BY e.repo_id, e.metric, chosen DESC, e.source, e.dataset, e.split
