-- reported_metrics: each reported metric and how many scanned models report it, most reported first (what
-- `wwhub leaderboard --metric` can rank by). Variables as reported_values.sql: `prefer_import`, `dataset`.
-- Columns: metric, models
SELECT metric, count(*) AS models
FROM reported_values
GROUP BY metric
ORDER BY models DESC, metric
