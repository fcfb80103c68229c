-- PSI of each input of a model per pipeline run. Parameter: model_id.
SELECT feature, CAST(epoch(computed_at) AS BIGINT) AS t, psi
FROM feature_psi WHERE model_id = ?
ORDER BY feature, t
