-- The ACI state a model's intervals are drawn with: its recipe's current miss rate per coin and
-- horizon (carried across versions of the same recipe), and the newest target hour already
-- taken into account (parameter: model_id).
SELECT s.coin_id, s.horizon, s.alpha, s.updates, s.misses,
       CAST(epoch(s.last_target) AS BIGINT) // 3600 AS last_target_hour,
       strftime(s.updated_at, '%Y-%m-%d %H:%M') AS updated
FROM aci_state s JOIN model_recipe_keys k USING (recipe_key)
WHERE k.model_id = ?
ORDER BY s.coin_id, s.horizon
