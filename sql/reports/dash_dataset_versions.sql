-- Dataset versions: the training data of each registered model.
SELECT m.dataset_version, m.model_id, array_to_string(e.coins, ','),
       CAST(epoch(e.trained_until) AS BIGINT), strftime(m.created_at, '%Y-%m-%d %H:%M')
FROM model_versions m JOIN experiments e USING (run_id)
ORDER BY m.created_at DESC
