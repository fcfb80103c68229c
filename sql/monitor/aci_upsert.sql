-- One coin and horizon of a model after an update run (parameters: model_id, coin_id, horizon,
-- alpha, updates, misses, last target hour as epoch seconds).
INSERT OR REPLACE INTO aci_state
    (model_id, coin_id, horizon, alpha, updates, misses, last_target, updated_at)
VALUES (?, ?, ?, ?, ?, ?, to_timestamp(?), now())
