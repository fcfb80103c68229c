-- A model's live reliability diagram: per coin and tested level, the monitor's outcomes of its
-- recipe's served versions inside the interval drawn at that level. Parameter: model_id.
SELECT r.coin_id, r.level, r.covered, r.outcomes
FROM live_reliability r JOIN model_recipe_keys k USING (recipe_key)
WHERE k.model_id = ?
ORDER BY r.coin_id, r.level
