-- export_evals: the evals table as `wwhub lake export` publishes it (flows/dataset): every reported value, or, with
-- the variable `latest_only` true, those of each repo's latest scan and every imported value (imports carry no
-- revision: they apply to every scan of their repo).
-- Columns: those of the evals table (flows/lake/schema.py EVALS_SCHEMA)
SELECT e.*
FROM evals e
WHERE NOT coalesce(getvariable('latest_only'), false)
   OR e.revision IS NULL
   OR (e.repo_id, e.revision) IN (SELECT repo_id, revision FROM models_latest)
ORDER BY e.repo_id, e.revision NULLS LAST, e.source, e.metric, e.dataset, e.split
