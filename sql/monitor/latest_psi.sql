-- The PSI of each input of a model from the newest pipeline run that computed it.
-- Parameters: model_id, model_id.
SELECT feature, psi, observations, CAST(epoch(window_to) AS BIGINT) AS window_to
FROM feature_psi
WHERE model_id = ?
  AND run_id = (SELECT max(run_id) FROM feature_psi WHERE model_id = ?)
ORDER BY feature
