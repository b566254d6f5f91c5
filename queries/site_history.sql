-- site_history: every scan of every repo (one row per models row: each revision a scan recorded, whatever its
-- status), oldest first: a model page's scans over time and a family page's trends over time.
-- Columns: family, repo_id, revision, scanned_at, scan_id, status, reason, wwhub_version, alpha, alpha_weighted,
--   log_spectral_norm, num_layers, num_ok, num_over_trained, num_under_trained
SELECT family, repo_id, revision, scanned_at, scan_id, status, reason, wwhub_version, alpha, alpha_weighted,
       log_spectral_norm, num_layers, num_ok, num_over_trained, num_under_trained
FROM models
ORDER BY repo_id, scanned_at, revision
