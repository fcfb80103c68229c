-- A model's walk-forward table: every candidate of its training run per horizon, averaged over
-- coins (interval score and pinball loss in percent of the price). Parameter: model_id.
WITH r AS (
    SELECT unnest(from_json(metrics -> 'rows', '["JSON"]')) AS row
    FROM model_versions WHERE model_id = ?
)
SELECT row ->> 'model' AS model, CAST(row ->> 'horizon' AS INTEGER) AS horizon,
       avg(TRY_CAST(row ->> 'mae' AS DOUBLE)) AS mae,
       avg(TRY_CAST(row ->> 'mape' AS DOUBLE)) AS mape,
       avg(TRY_CAST(row ->> 'directional_accuracy' AS DOUBLE)) AS direction,
       avg(TRY_CAST(row ->> 'skill' AS DOUBLE)) AS skill,
       avg(TRY_CAST(row ->> 'coverage' AS DOUBLE)) AS coverage,
       avg(TRY_CAST(row ->> 'width' AS DOUBLE)) AS width,
       avg(TRY_CAST(row ->> 'interval_score' AS DOUBLE)) AS interval_score,
       avg(TRY_CAST(row ->> 'pinball' AS DOUBLE)) AS pinball
FROM r
GROUP BY ALL
ORDER BY horizon, interval_score NULLS LAST, model
