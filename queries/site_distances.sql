-- site_distances: per layer, how far each model's latest scan is from its base (the distances table: written by
-- scans of models whose card names a base_model, or with --base), for a fine-tune's page. Repos bounded by
-- `first_repo` / `last_repo` as in site_layers.sql.
-- Columns: repo_id, revision, base_repo_id, base_revision, layer_id, name, layer_type, method, delta_W,
--   relative_change, dW_stable_rank, dW_rank, M, dW_alpha, fit_status, reason
SELECT d.repo_id, d.revision, d.base_repo_id, d.base_revision, d.layer_id, d.name, d.layer_type, d.method, d.delta_W,
       d.relative_change, d.dW_stable_rank, d.dW_rank, d.M, d.dW_alpha, d.fit_status, d.reason
FROM distances d JOIN models_latest m USING (repo_id, revision)
WHERE getvariable('first_repo') IS NULL
   OR d.repo_id BETWEEN getvariable('first_repo') AND getvariable('last_repo')
ORDER BY d.repo_id, d.base_repo_id, d.layer_id
