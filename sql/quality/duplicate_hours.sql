-- name: duplicate_hours
-- severity: warn
-- description: one price point per hour (with more, the latest point of the hour is kept)
-- threshold: 1
SELECT ts AS hour, points
FROM staged_rows
WHERE batch_id = getvariable('batch_id') AND points > getvariable('threshold')
ORDER BY ts
