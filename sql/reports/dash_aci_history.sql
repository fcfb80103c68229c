-- The level a model's 1-hour intervals were drawn at after each coverage-control update, per
-- coin, over every version of its recipe (ACI follows the recipe). Parameter: model_id.
SELECT l.coin_id, CAST(epoch(l.logged_at) AS BIGINT) AS t, 1 - l.alpha_to AS level
FROM aci_log l JOIN model_recipe_keys k USING (model_id)
WHERE l.horizon = 1
  AND k.recipe_key = (SELECT recipe_key FROM model_recipe_keys WHERE model_id = ?)
ORDER BY l.coin_id, t
