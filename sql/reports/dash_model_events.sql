-- Promotion history, newest first.
SELECT model_id, strftime(event_at, '%Y-%m-%d %H:%M:%S'), event, coalesce(reason, '')
FROM model_events
ORDER BY event_at DESC
LIMIT 100
