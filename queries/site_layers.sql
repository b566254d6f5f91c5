-- site_layers: every layers row of each model's latest scan, in depth order, for the model pages of the static site
-- (flows/site): ok, failed and skipped rows alike, each with its reason. The variables `first_repo` and `last_repo`
-- (inclusive; both null = every repo) bound the repos read, so the site reads a large lake one slice at a time.
-- Columns: repo_id, revision, layer_id, slice_id, name, layer_type, expert, quantization, N, M, num_evals, alpha,
--   alpha_weighted, log_spectral_norm, stable_rank, D, xmin, num_pl_spikes, warning, correlation_trap,
--   rand_distance, fit_status, reason
SELECT l.repo_id, l.revision, l.layer_id, l.slice_id, l.name, l.layer_type, l.expert, l.quantization, l.N, l.M,
       l.num_evals, l.alpha, l.alpha_weighted, l.log_spectral_norm, l.stable_rank, l.D, l.xmin, l.num_pl_spikes,
       l.warning, l.correlation_trap, l.rand_distance, l.fit_status, l.reason
FROM layers l JOIN models_latest m USING (repo_id, revision)
WHERE getvariable('first_repo') IS NULL
   OR l.repo_id BETWEEN getvariable('first_repo') AND getvariable('last_repo')
ORDER BY l.repo_id, l.layer_id, l.slice_id
