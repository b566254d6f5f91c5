-- correlation_flow: alpha by layer depth for every model (latest revision), the "correlation flow" plot of
-- Martin & Mahoney: depth is the layer's position among the model's fitted layers, 0 = first, 1 = last.
-- Columns: family, repo_id, layer_id, name, depth, alpha, alpha_weighted
SELECT l.family, l.repo_id, l.layer_id, l.name,
       CASE WHEN count(*) OVER w = 1 THEN 0.0
            ELSE (row_number() OVER w - 1) / (count(*) OVER w - 1)::DOUBLE END AS depth,
       l.alpha, l.alpha_weighted
FROM layers l JOIN models_latest m USING (repo_id, revision)
WHERE l.fit_status = 'ok'
WINDOW w AS (PARTITION BY l.repo_id ORDER BY l.layer_id, l.slice_id
             ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)
ORDER BY l.family, l.repo_id, l.layer_id, l.slice_id
