-- layer_outliers: layers across the lake (each repo's latest scanned revision) that look over-trained
-- (alpha < 2), under-trained (alpha > 6), or hold a correlation trap (the shuffled matrix still has a spike).
-- Columns: family, repo_id, revision, layer_id, name, layer_type, N, M, alpha, warning, correlation_trap,
--   rand_lambda_max, rand_iid_bulk_max, lambda_max
SELECT l.family, l.repo_id, l.revision, l.layer_id, l.name, l.layer_type, l.N, l.M, l.alpha, l.warning,
       l.correlation_trap, l.rand_lambda_max, l.rand_iid_bulk_max, l.lambda_max
FROM layers l JOIN models_latest m USING (repo_id, revision)
WHERE l.fit_status = 'ok' AND (l.alpha < 2 OR l.alpha > 6 OR coalesce(l.correlation_trap, false))
ORDER BY l.family, l.repo_id, l.layer_id, l.slice_id
