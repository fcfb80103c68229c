-- name: freshness
-- severity: warn
-- description: the newest hour is at most `threshold` hours older than the batch's fetch time
-- threshold: 3
SELECT max(r.ts) AS newest_hour, any_value(b.fetched_at) AS fetched_at,
       round((epoch(any_value(b.fetched_at)) - epoch(max(r.ts))) / 3600, 1) AS age_hours
FROM staged_rows r JOIN raw_batches b ON b.batch_id = r.batch_id
WHERE r.batch_id = getvariable('batch_id')
HAVING (epoch(any_value(b.fetched_at)) - epoch(max(r.ts))) / 3600 > getvariable('threshold')
