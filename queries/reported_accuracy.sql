-- reported_accuracy: reported_values for one metric, the variable `metric` (default 'accuracy'; a normalised
-- name, see README "Reported metrics"). Precedence, scale and the `prefer_import` / `dataset` / `family` variables
-- as in reported_values.sql.
-- Columns: repo_id, revision, metric, value, reported_scale, source, dataset, split, n_shot, stderr, raw_metric,
--   higher_is_better, precedence
SELECT *
FROM reported_values
WHERE metric = lower(coalesce(getvariable('metric'), 'accuracy'))
