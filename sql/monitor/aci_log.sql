-- Where one update run moved a coin's horizon (parameters: run_id, model_id, coin_id, horizon,
-- alpha before, alpha after, outcomes scored, of which missed).
INSERT INTO aci_log
    (run_id, model_id, coin_id, horizon, alpha_from, alpha_to, scored, missed, logged_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, now())
