-- layer_esd: the stored ESD of one layer of a repo's latest scan, with the layer's fit (what `wwhub plot --esd`
-- draws). Variables: `repo_id`, and the layer by `layer_id` or by tensor `layer_name` (the other one NULL); the
-- first slice of a Conv2D layer analyzed slice by slice.
-- Columns: the esd table's columns, alpha, xmin, correlation_trap
SELECT e.*, l.alpha, l.xmin, l.correlation_trap
FROM esd e
JOIN models_latest m USING (repo_id, revision)
JOIN layers l ON l.repo_id = e.repo_id AND l.revision = e.revision AND l.name = e.name AND l.slice_id = e.slice_id
WHERE e.repo_id = getvariable('repo_id')
  AND (e.layer_id = getvariable('layer_id') OR e.name = getvariable('layer_name'))
ORDER BY e.slice_id
LIMIT 1
