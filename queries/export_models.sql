-- export_models: the models table as `wwhub lake export` publishes it (flows/dataset): one row per scanned revision
-- of every repo, or, with the variable `latest_only` true, each repo's latest scan only (models_latest).
-- Columns: those of the models table (flows/lake/schema.py MODELS_SCHEMA)
SELECT m.*
FROM models m
WHERE NOT coalesce(getvariable('latest_only'), false)
   OR (m.repo_id, m.revision) IN (SELECT repo_id, revision FROM models_latest)
ORDER BY m.repo_id, m.scanned_at, m.revision
