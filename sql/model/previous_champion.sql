-- The champion before the current one (a rollback's target): the newest promotion of another
-- model still registered. Param: the current champion's model_id.
SELECT model_id FROM model_events
WHERE event = 'promoted' AND model_id <> ?
  AND model_id IN (SELECT model_id FROM model_versions)
ORDER BY event_at DESC
LIMIT 1
