-- site_drift: the 10 layers whose alpha moved most between the two most recently scanned commits of a repo
-- (queries/drift.sql), for the "scans over time" part of a model page. Repos bounded by `first_repo` /
-- `last_repo` as in site_layers.sql.
-- Columns: repo_id, name, previous_revision, revision, previous_alpha, alpha, delta_alpha
SELECT repo_id, name, previous_revision, revision, previous_alpha, alpha, delta_alpha
FROM drift
WHERE getvariable('first_repo') IS NULL OR repo_id BETWEEN getvariable('first_repo') AND getvariable('last_repo')
QUALIFY row_number() OVER (PARTITION BY repo_id ORDER BY abs(delta_alpha) DESC, name) <= 10
ORDER BY repo_id, abs(delta_alpha) DESC, name
