-- A coin's new live outcomes of a model at one tested level, added to its recipe's counts
-- (parameters: covered, outcomes, coin_id, level, model_id).
INSERT INTO live_reliability (recipe_key, recipe, coin_id, level, covered, outcomes, updated_at)
SELECT recipe_key, recipe, ?3, ?4, ?1, ?2, now()
FROM model_recipe_keys
WHERE model_id = ?5
ON CONFLICT (recipe_key, coin_id, level) DO UPDATE
SET covered = covered + excluded.covered,
    outcomes = outcomes + excluded.outcomes,
    updated_at = excluded.updated_at
