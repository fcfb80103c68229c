-- A model's reliability diagram from the walk-forward of its training run: per coin and tested
-- level, the test outcomes inside the interval drawn at that level (src/model/evaluate/,
-- RELIABILITY_LEVELS). Parameters: model_id, then its forecaster's name.
WITH r AS (
    SELECT unnest(from_json(metrics -> 'reliability', '["JSON"]')) AS row
    FROM model_versions WHERE model_id = $1
)
SELECT (row ->> 'coin_id') AS coin_id,
       CAST(row ->> 'level' AS DOUBLE) AS level,
       CAST(row ->> 'covered' AS BIGINT) AS covered,
       CAST(row ->> 'n' AS BIGINT) AS n
FROM r
WHERE (row ->> 'model') = $2
ORDER BY coin_id, level
