-- export_layers: the layers table as `wwhub lake export` publishes it (flows/dataset): every layer of every
-- scanned revision, or, with the variable `latest_only` true, of each repo's latest scan only.
-- Columns: those of the layers table (flows/lake/schema.py LAYERS_SCHEMA)
SELECT l.*
FROM layers l
WHERE NOT coalesce(getvariable('latest_only'), false)
   OR (l.repo_id, l.revision) IN (SELECT repo_id, revision FROM models_latest)
ORDER BY l.repo_id, l.revision, l.layer_id, l.slice_id
