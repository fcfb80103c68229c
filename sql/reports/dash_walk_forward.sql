-- A model's walk-forward table: each model (the candidate and the baselines) per horizon,
-- averaged over coins. Parameter: model_id.
WITH r AS (
    SELECT unnest(from_json(metrics -> 'rows', '["JSON"]')) AS row
    FROM model_versions WHERE model_id = ?
)
SELECT row ->> 'model' AS model, CAST(row ->> 'horizon' AS INTEGER) AS horizon,
       avg(TRY_CAST(row ->> 'mae' AS DOUBLE)) AS mae,
       avg(TRY_CAST(row ->> 'mape' AS DOUBLE)) AS mape,
       avg(TRY_CAST(row ->> 'directional_accuracy' AS DOUBLE)) AS direction,
       avg(TRY_CAST(row ->> 'skill' AS DOUBLE)) AS skill,
       avg(TRY_CAST(row ->> 'coverage' AS DOUBLE)) AS coverage
FROM r
GROUP BY ALL
ORDER BY horizon, model
