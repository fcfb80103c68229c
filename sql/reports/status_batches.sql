-- Batches by state, and the latest quarantined or failed ones with their reasons.
SELECT batch_id, coin_id, source, state,
       strftime(fetched_at AT TIME ZONE 'UTC', '%Y-%m-%d %H:%M:%S') AS fetched_at,
       coalesce(reason, '') AS reason
FROM raw_batches
WHERE state IN ('quarantined', 'failed')
ORDER BY batch_id DESC
LIMIT 20
