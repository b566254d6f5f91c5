-- export_distances: the distances table as `wwhub lake export` publishes it (flows/dataset): each fine-tune's
-- layers against its base, or, with the variable `latest_only` true, for each repo's latest scan only.
-- Columns: those of the distances table (flows/lake/schema.py DISTANCES_SCHEMA)
SELECT d.*
FROM distances d
WHERE NOT coalesce(getvariable('latest_only'), false)
   OR (d.repo_id, d.revision) IN (SELECT repo_id, revision FROM models_latest)
ORDER BY d.repo_id, d.revision, d.base_repo_id, d.layer_id
