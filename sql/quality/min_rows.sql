-- name: min_rows
-- severity: error
-- description: the batch holds at least `threshold` hours
-- threshold: 10
SELECT count(*) AS hours, getvariable('threshold') AS required
FROM staged_rows
WHERE batch_id = getvariable('batch_id')
HAVING count(*) < getvariable('threshold')
