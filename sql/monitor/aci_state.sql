-- The ACI state of one served model: its current miss rate per coin and horizon, and the newest
-- target hour already taken into account (parameter: model_id).
SELECT coin_id, horizon, alpha, updates, misses,
       CAST(epoch(last_target) AS BIGINT) // 3600 AS last_target_hour,
       strftime(updated_at, '%Y-%m-%d %H:%M') AS updated
FROM aci_state
WHERE model_id = ?
ORDER BY coin_id, horizon
