-- Failed rule checks of the batches gated in a pipeline run, by rule. Parameter: run_id.
-- A rechecked batch keeps the run_id of the run that fetched it, so it counts under that run.
SELECT q.rule, q.severity, count(*) AS failures
FROM quality_results q
JOIN raw_batches b USING (batch_id)
WHERE b.run_id = ? AND NOT q.passed
GROUP BY q.rule, q.severity
ORDER BY q.rule
