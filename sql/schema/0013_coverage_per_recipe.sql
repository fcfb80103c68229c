-- Online coverage, per recipe.
-- 1. ACI follows the recipe, not the version: the daily retrain registers a new version of the
--    same recipe, and its intervals go on at the level the recipe reached instead of starting
--    again at nominal (the walk-forward runs one ACI through every refit the same way,
--    src/model/evaluate/). A recipe is its JSON (model_versions.recipe): a changed
--    hyperparameter is a new recipe and starts at nominal. A registration without a recipe, and
--    the cold floor, are their own keys.
-- 2. The live reliability diagram, counted by the monitor task per recipe (below).
-- Runs on a checkpointed copy of the file (src/store/file.rs), so DROP and RENAME are safe here.

-- The floor registered before any training (experiments.family 'floor', src/model/floor.rs)
-- has the trained floor's recipe but Gaussian multipliers instead of a calibration: what ACI
-- learned about it says nothing about calibrated intervals, so it keeps a key of its own.
CREATE VIEW model_recipe_keys AS
SELECT m.model_id, m.family AS recipe,
       CASE WHEN m.recipe IS NULL OR e.family = 'floor' THEN 'model:' || m.model_id
            ELSE sha256(CAST(m.recipe AS VARCHAR)) END AS recipe_key
FROM model_versions m LEFT JOIN experiments e USING (run_id);

CREATE TABLE aci_recipe_state (
    recipe_key   VARCHAR NOT NULL,       -- model_recipe_keys.recipe_key
    recipe       VARCHAR NOT NULL,       -- its name (persistence_ewma, lstm_quantile ...)
    model_id     VARCHAR NOT NULL,       -- the version whose outcomes moved it last
    coin_id      VARCHAR NOT NULL,
    horizon      INTEGER NOT NULL,
    alpha        DOUBLE NOT NULL,        -- the miss rate aimed at: intervals at level 1 - alpha
    updates      BIGINT NOT NULL,        -- outcomes that moved it, over every version
    misses       BIGINT NOT NULL,        -- of which outside their interval
    last_target  TIMESTAMPTZ,            -- the newest target hour taken into account
    updated_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (recipe_key, coin_id, horizon)
);

-- Each recipe keeps the state of its version updated last.
INSERT INTO aci_recipe_state
SELECT k.recipe_key, k.recipe, s.model_id, s.coin_id, s.horizon, s.alpha, s.updates, s.misses,
       s.last_target, s.updated_at
FROM aci_state s JOIN model_recipe_keys k USING (model_id)
QUALIFY row_number() OVER (
    PARTITION BY k.recipe_key, s.coin_id, s.horizon ORDER BY s.updated_at DESC, s.model_id DESC) = 1;

DROP TABLE aci_state;
ALTER TABLE aci_recipe_state RENAME TO aci_state;

-- The live reliability diagram: the monitor task's every-hour forecasts of the served models,
-- per recipe, coin and tested level (src/model/evaluate/, RELIABILITY_LEVELS), over every
-- horizon: outcomes inside the interval the version's calibration draws at that level. Counts
-- only grow; the models page draws them beside the walk-forward's.
CREATE TABLE live_reliability (
    recipe_key   VARCHAR NOT NULL,
    recipe       VARCHAR NOT NULL,
    coin_id      VARCHAR NOT NULL,
    level        DOUBLE NOT NULL,
    covered      BIGINT NOT NULL,
    outcomes     BIGINT NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (recipe_key, coin_id, level)
);
