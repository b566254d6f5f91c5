-- drift: per layer, how alpha changed between the two most recently scanned commits of the same repo
-- (a fine-tune, a re-upload, a new checkpoint). Layers are matched by tensor name.
-- Columns: family, repo_id, name, previous_revision, revision, previous_alpha, alpha, delta_alpha,
--   previous_log_spectral_norm, log_spectral_norm
WITH ordered AS (
    SELECT repo_id, revision, scanned_at,
           row_number() OVER (PARTITION BY repo_id ORDER BY scanned_at DESC) AS recency
    FROM models WHERE status IN ('scanned', 'partial')
),
latest AS (SELECT * FROM ordered WHERE recency = 1),
previous AS (SELECT * FROM ordered WHERE recency = 2)
SELECT n.family, n.repo_id, n.name, p.revision AS previous_revision, n.revision, o.alpha AS previous_alpha,
       n.alpha, n.alpha - o.alpha AS delta_alpha, o.log_spectral_norm AS previous_log_spectral_norm,
       n.log_spectral_norm
FROM latest c
JOIN previous p USING (repo_id)
JOIN layers n ON n.repo_id = c.repo_id AND n.revision = c.revision
JOIN layers o ON o.repo_id = p.repo_id AND o.revision = p.revision AND o.name = n.name AND o.slice_id = n.slice_id
WHERE n.fit_status = 'ok' AND o.fit_status = 'ok'
ORDER BY abs(n.alpha - o.alpha) DESC
