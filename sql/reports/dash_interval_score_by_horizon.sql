-- Per coin and horizon, the interval score (percent of the price) of a model's own forecaster
-- and of persistence with constant width, from the walk-forward of its training run. Parameters:
-- model_id, then its forecaster's name (the candidate label of its recipe).
WITH r AS (
    SELECT unnest(from_json(metrics -> 'rows', '["JSON"]')) AS row
    FROM model_versions WHERE model_id = $1
)
SELECT row ->> 'coin_id' AS coin_id, row ->> 'model' AS model,
       CAST(row ->> 'horizon' AS INTEGER) AS horizon,
       TRY_CAST(row ->> 'interval_score' AS DOUBLE) AS interval_score
FROM r
-- (->> binds looser than IN and IS: parenthesized.)
WHERE (row ->> 'model') IN ($2, 'persistence') AND (row ->> 'coin_id') IS NOT NULL
ORDER BY coin_id, model, horizon
