-- The champion's history, oldest first: every promotion (by the gate or by hand) and every
-- rollback's restoration. Read as a stack by `registry::champion_history`.
SELECT model_id, event, coalesce(reason, '')
FROM model_events
WHERE event IN ('promoted', 'restored')
ORDER BY event_at, rowid
