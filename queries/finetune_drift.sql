-- finetune_drift: how far each fine-tune moved from its base, which layer moved most, and how the size of the move
-- and the change in alpha relate to the change in reported accuracy versus the base.
-- Reads the distances table (written by scans for models whose card names a base_model, or with --base) at each
-- fine-tune's latest scanned revision; alpha from models; accuracy from reported_accuracy (variable `metric`).
-- One row per (fine-tune, base), ranked within each base by mean relative change ||dW||/||W_base|| (1 = moved
-- most). r_move_accuracy and r_alpha_accuracy are Pearson r over the base's fine-tunes with an accuracy
-- (n_with_accuracy of them): of delta_accuracy with mean_relative_change, and with delta_alpha.
-- Columns: base_repo_id, base_revision, family, repo_id, revision, rank_by_move, num_layers, mean_relative_change,
--   max_relative_change, top_layer, mean_delta_W, mean_dW_rank_fraction, mean_dW_alpha, alpha, base_alpha,
--   delta_alpha, metric, accuracy, base_accuracy, delta_accuracy, r_move_accuracy, r_alpha_accuracy,
--   n_with_accuracy
WITH latest AS (
    SELECT repo_id, revision, family, alpha FROM models_latest WHERE status IN ('scanned', 'partial')
),
per_model AS (
    SELECT d.base_repo_id, d.base_revision, d.repo_id, d.revision, count(*) AS num_layers,
           avg(d.relative_change) AS mean_relative_change, max(d.relative_change) AS max_relative_change,
           arg_max(d.name, d.relative_change) AS top_layer, avg(d.delta_W) AS mean_delta_W,
           avg(d.dW_rank / d.M) AS mean_dW_rank_fraction, avg(d.dW_alpha) AS mean_dW_alpha
    FROM distances d
    JOIN latest l ON l.repo_id = d.repo_id AND l.revision = d.revision
    WHERE d.fit_status = 'ok' AND isfinite(d.relative_change)
    GROUP BY d.base_repo_id, d.base_revision, d.repo_id, d.revision
),
joined AS (
    SELECT p.*, l.family, l.alpha, b.alpha AS base_alpha, l.alpha - b.alpha AS delta_alpha,
           r.metric, r.value AS accuracy, rb.value AS base_accuracy, r.value - rb.value AS delta_accuracy
    FROM per_model p
    JOIN latest l ON l.repo_id = p.repo_id AND l.revision = p.revision
    LEFT JOIN models b ON b.repo_id = p.base_repo_id AND b.revision = p.base_revision
    LEFT JOIN reported_accuracy r ON r.repo_id = p.repo_id
    LEFT JOIN reported_accuracy rb ON rb.repo_id = p.base_repo_id AND rb.metric = r.metric
)
SELECT base_repo_id, base_revision, family, repo_id, revision,
       rank() OVER (PARTITION BY base_repo_id ORDER BY mean_relative_change DESC) AS rank_by_move,
       num_layers, mean_relative_change, max_relative_change, top_layer, mean_delta_W, mean_dW_rank_fraction,
       mean_dW_alpha, alpha, base_alpha, delta_alpha, metric, accuracy, base_accuracy, delta_accuracy,
       corr(delta_accuracy, mean_relative_change) OVER (PARTITION BY base_repo_id) AS r_move_accuracy,
       corr(delta_accuracy, delta_alpha) OVER (PARTITION BY base_repo_id) AS r_alpha_accuracy,
       count(delta_accuracy) OVER (PARTITION BY base_repo_id) AS n_with_accuracy
FROM joined
ORDER BY base_repo_id, rank_by_move, repo_id
