-- esd_layers: the layers of a repo's latest scan, each with whether its eigenvalues are stored (what `wwhub plot
-- --esd` names when the layer it was asked for has none: the layer ids there are, or why that layer has no ESD).
-- Variables: `repo_id`.
-- Columns: layer_id, name, slice_id, fit_status, reason, has_esd
SELECT l.layer_id, l.name, l.slice_id, l.fit_status, l.reason, e.name IS NOT NULL AS has_esd
FROM layers l
JOIN models_latest m USING (repo_id, revision)
LEFT JOIN esd e ON e.repo_id = l.repo_id AND e.revision = l.revision AND e.name = l.name AND e.slice_id = l.slice_id
WHERE l.repo_id = getvariable('repo_id')
ORDER BY l.layer_id, l.slice_id
