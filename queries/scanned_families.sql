-- scanned_families: the families with at least one scanned (or partly scanned) model at its latest scan.
-- Columns: family
SELECT DISTINCT family
FROM models_latest
WHERE status IN ('scanned', 'partial')
ORDER BY family
