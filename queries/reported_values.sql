-- reported_values: the one reported value per (model, metric) that leaderboards and correlations use.
-- For each repo's latest scanned revision and each metric (normalised names: README "Reported metrics"), the eval
-- row chosen by source precedence: 1 model-index (the card at the scanned commit), 2 eval_results (.eval_results
-- at that commit), 3 imported CSV, 4 imported lm-evaluation-harness results, 5 imported Open LLM Leaderboard;
-- with the variable `prefer_import` true, imports (3-5) come before cards (1-2). Imports carry no commit and apply
-- to every scanned revision. Within a source: dataset, split, then the larger value. The variable `dataset`
-- (optional) keeps only that dataset, the variable `family` (optional) only that family's models. `value` is on
-- the fraction scale (percentages divided by 100: never mixed in one ranking or correlation); `reported_scale`
-- says how the source wrote it.
-- Columns: repo_id, revision, metric, value, reported_scale, source, dataset, split, n_shot, stderr, raw_metric,
--   higher_is_better, precedence
WITH params AS (
    SELECT coalesce(getvariable('prefer_import'), false) AS prefer_import,
           nullif(lower(coalesce(getvariable('dataset'), '')), '') AS dataset
),
candidates AS (
    SELECT m.repo_id, m.revision, e.metric,
           CASE WHEN e.scale = 'percent' THEN e.value / 100 ELSE e.value END AS value,
           e.scale AS reported_scale, e.source, e.dataset, e.split, e.n_shot, e.stderr, e.raw_metric,
           CASE WHEN e.source = 'model-index' THEN 1
                WHEN e.source = 'eval_results' THEN 2
                WHEN e.source LIKE 'import:lm-eval:%' THEN 4
                WHEN e.source LIKE 'import:open-llm-leaderboard%' THEN 5
                WHEN e.source LIKE 'import:%' THEN 3
                ELSE 6 END AS precedence,
           e.revision IS NULL AS imported
    FROM models_latest m
    JOIN evals e ON e.repo_id = m.repo_id AND (e.revision = m.revision OR e.revision IS NULL)
    CROSS JOIN params p
    WHERE isfinite(e.value) AND (p.dataset IS NULL OR lower(e.dataset) = p.dataset)
      AND (getvariable('family') IS NULL OR m.family = getvariable('family'))
),
ranked AS (
    SELECT c.*, row_number() OVER (
               PARTITION BY c.repo_id, c.metric
               ORDER BY c.imported = p.prefer_import DESC, c.precedence, c.dataset, c.split, c.value DESC
           ) AS choice
    FROM candidates c CROSS JOIN params p
)
SELECT repo_id, revision, metric, value, reported_scale, source, dataset, split, n_shot, stderr, raw_metric,
       NOT regexp_matches(metric, 'error|loss|perplexity|ppl|wer|cer|mse|mae|rmse|bits_per_byte') AS higher_is_better,
       precedence
FROM ranked
WHERE choice = 1
