-- reported_accuracy: the one reported value per model that leaderboards and correlations use.
-- For each repo's latest scanned revision, the eval row whose metric is the variable `metric` (default
-- 'accuracy', case-insensitive): card rows (model-index, eval results) win over imported ones unless the
-- variable `prefer_import` is true; ties between datasets are broken by dataset then split name. With the variable
-- `family` set, only that family's models.
-- Columns: repo_id, revision, metric, value, source, dataset, split, higher_is_better
WITH params AS (
    SELECT lower(coalesce(getvariable('metric'), 'accuracy')) AS metric,
           coalesce(getvariable('prefer_import'), false) AS prefer_import
),
candidates AS (
    SELECT m.repo_id, m.revision, e.metric, e.value, e.source, e.dataset, e.split,
           row_number() OVER (
               PARTITION BY m.repo_id
               ORDER BY (e.source LIKE 'import%') = p.prefer_import DESC, e.dataset, e.split, e.value DESC
           ) AS choice
    FROM models_latest m
    JOIN evals e ON e.repo_id = m.repo_id AND (e.revision = m.revision OR e.source LIKE 'import%')
    CROSS JOIN params p
    WHERE lower(e.metric) = p.metric AND isfinite(e.value)
      AND (getvariable('family') IS NULL OR m.family = getvariable('family'))
)
SELECT repo_id, revision, metric, value, source, dataset, split,
       NOT regexp_matches(lower(metric), 'error|loss|perplexity|ppl|wer|cer|mse|mae|rmse') AS higher_is_better
FROM candidates
WHERE choice = 1
