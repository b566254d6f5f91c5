-- leaderboard: per family, each model's weight-metric averages (over layers whose fit is ok) next to its reported
-- value of the variable `metric` (see reported_accuracy.sql: one value per model, on the fraction scale, with its
-- source), ranked within the family by that value (rank_by_value: 1 = best, respecting lower-is-better metrics)
-- and by alpha (rank_by_alpha: 1 = smallest average alpha, which HT-SR expects of the better-trained model).
-- With the variable `family` set, only that family's models are read. A family whose listing is recorded
-- (family_members.sql) shows its current members only, unless the variable `all_members` is true; `member` says
-- whether a row's model is in its family's latest listing (null: the family has no recorded listing).
-- Each model's last good scan is shown (models_latest): last_attempt_failed flags a later attempt that failed,
-- last_attempt_status and last_attempt_reason say how.
-- Columns: family, repo_id, revision, metric, value, reported_scale, source, dataset, n_shot, stderr,
--   higher_is_better, rank_by_value, rank_by_alpha, alpha, alpha_weighted, log_alpha_norm, log_spectral_norm,
--   log_norm, stable_rank, mp_softrank, num_layers, num_ok, num_failed, num_over_trained, num_under_trained,
--   num_trap_layers, model_kind, quantization, status, scanned_at, member, last_attempt_failed,
--   last_attempt_status, last_attempt_reason
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
       m.num_trap_layers, m.model_kind, m.quantization, m.status, m.scanned_at,
       CASE WHEN listed.family IS NULL THEN NULL ELSE f.repo_id IS NOT NULL END AS member,
       m.last_attempt_failed, m.last_attempt_status, m.last_attempt_reason
FROM models_latest m
LEFT JOIN reported_accuracy r USING (repo_id)
LEFT JOIN (SELECT DISTINCT family FROM family_members) listed ON listed.family = m.family
LEFT JOIN family_members f ON f.family = m.family AND f.repo_id = m.repo_id
WHERE m.status IN ('scanned', 'partial') AND (getvariable('family') IS NULL OR m.family = getvariable('family'))
  AND (coalesce(getvariable('all_members'), false) OR listed.family IS NULL OR f.repo_id IS NOT NULL)
ORDER BY m.family, rank_by_value NULLS LAST, m.repo_id
