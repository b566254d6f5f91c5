-- site_esd: the stored ESD (flows/lake/esd.py: every eigenvalue, or the fitted tail and a quantile sketch) of the
-- layers a model page plots, at each model's latest scan: its lowest-alpha layer (the most over-trained when it
-- is flagged so), its highest-alpha layer (the most under-trained), and up to 3 correlation traps (largest
-- rand_distance first). Only layers whose fit is ok. Repos bounded by `first_repo` / `last_repo` as in
-- site_layers.sql.
-- Columns: repo_id, revision, layer_id, slice_id, name, alpha, xmin, warning, correlation_trap, is_lowest,
--   is_highest, storage, num_evals, evals, bulk_quantiles, rand_num_evals, rand_evals, rand_bulk_quantiles
WITH ranked AS (
    SELECT l.repo_id, l.revision, l.layer_id, l.slice_id, l.name, l.alpha, l.xmin, l.warning,
           coalesce(l.correlation_trap, false) AS correlation_trap,
           row_number() OVER (PARTITION BY l.repo_id ORDER BY l.alpha, l.layer_id, l.slice_id) = 1 AS is_lowest,
           row_number() OVER (PARTITION BY l.repo_id ORDER BY l.alpha DESC, l.layer_id, l.slice_id) = 1 AS is_highest,
           row_number() OVER (PARTITION BY l.repo_id
                              ORDER BY coalesce(l.correlation_trap, false) DESC, l.rand_distance DESC NULLS LAST,
                                       l.layer_id, l.slice_id) AS trap_rank
    FROM layers l JOIN models_latest m USING (repo_id, revision)
    WHERE l.fit_status = 'ok' AND isfinite(l.alpha)
      AND (getvariable('first_repo') IS NULL
           OR l.repo_id BETWEEN getvariable('first_repo') AND getvariable('last_repo'))
)
SELECT r.repo_id, r.revision, r.layer_id, r.slice_id, r.name, r.alpha, r.xmin, r.warning, r.correlation_trap,
       r.is_lowest, r.is_highest, e.storage, e.num_evals, e.evals, e.bulk_quantiles, e.rand_num_evals, e.rand_evals,
       e.rand_bulk_quantiles
FROM ranked r
JOIN esd e ON e.repo_id = r.repo_id AND e.revision = r.revision AND e.name = r.name AND e.slice_id = r.slice_id
WHERE (r.is_lowest OR r.is_highest OR (r.correlation_trap AND r.trap_rank <= 3))
  -- Stated on esd itself too, so the scan of its large eigenvalue lists skips what is outside the slice.
  AND (getvariable('first_repo') IS NULL
       OR e.repo_id BETWEEN getvariable('first_repo') AND getvariable('last_repo'))
ORDER BY r.repo_id, r.layer_id, r.slice_id
