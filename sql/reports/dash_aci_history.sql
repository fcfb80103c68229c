-- The level a model's 1-hour intervals were drawn at after each coverage-control update, per
-- coin. Parameter: model_id.
SELECT coin_id, CAST(epoch(logged_at) AS BIGINT) AS t, 1 - alpha_to AS level
FROM aci_log WHERE model_id = ? AND horizon = 1
ORDER BY coin_id, t
