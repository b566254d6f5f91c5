-- leaderboard: per family, each model's weight-metric averages (over layers whose fit is ok) next to its reported
-- value of the variable `metric` (see reported_accuracy.sql: one value per model, on the fraction scale, with its
-- source), ranked within the family by that value (rank_by_value: 1 = best, respecting lower-is-better metrics)
-- and by alpha (rank_by_alpha: 1 = smallest average alpha, which HT-SR expects of the better-trained model).
-- With the variable `family` set, only that family's models are read.
-- Columns: family, repo_id, revision, metric, value, reported_scale, source, dataset, n_shot, stderr,
--   higher_is_better, rank_by_value, rank_by_alpha, alpha, alpha_weighted, log_alpha_norm, log_spectral_norm,
--   log_norm, stable_rank, mp_softrank, num_layers, num_ok, num_failed, num_over_trained, num_under_trained,
--   num_traps, model_kind, quantization, status, scanned_at
-- Adapters are their own families (name-adapters); model_kind and quantization let a query filter or group by
-- adapter / merged / full model and by quantization scheme ('' for plain weights).
SELECT m.family, m.repo_id, m.revision, r.metric, r.value, r.reported_scale, r.source, r.dataset, r.n_shot,
       r.stderr, r.higher_is_better,
       CASE WHEN r.value IS NULL THEN NULL
            ELSE rank() OVER (PARTITION BY m.family, r.value IS NULL
                              ORDER BY CASE WHEN r.higher_is_better THEN -r.value ELSE r.value END) END
           AS rank_by_value,
       rank() OVER (PARTITION BY m.family ORDER BY m.alpha NULLS LAST) AS rank_by_alpha,
       m.alpha, m.alpha_weighted, m.log_alpha_norm, m.log_spectral_norm, m.log_norm, m.stable_rank,
       m.mp_softrank, m.num_layers, m.num_ok, m.num_failed, m.num_over_trained, m.num_under_trained,
       m.num_traps, m.model_kind, m.quantization, m.status, m.scanned_at
FROM models_latest m
LEFT JOIN reported_accuracy r USING (repo_id)
WHERE m.status IN ('scanned', 'partial') AND (getvariable('family') IS NULL OR m.family = getvariable('family'))
ORDER BY m.family, rank_by_value NULLS LAST, m.repo_id
