-- One coin and horizon of a model's recipe after an update run (parameters: alpha, updates,
-- misses, coin_id, horizon, last target hour as epoch seconds, model_id).
INSERT OR REPLACE INTO aci_state
    (recipe_key, recipe, model_id, coin_id, horizon, alpha, updates, misses, last_target, updated_at)
SELECT recipe_key, recipe, model_id, ?4, ?5, ?1, ?2, ?3, to_timestamp(?6), now()
FROM model_recipe_keys
WHERE model_id = ?7
