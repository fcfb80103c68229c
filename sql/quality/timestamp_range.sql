-- name: timestamp_range
-- severity: error
-- description: timestamps are Unix milliseconds after 2009-01-03 and at most `threshold` hours past the fetch time
-- threshold: 1
SELECT p.series, p.idx, p.ts_ms,
       CASE WHEN p.ts_ms BETWEEN 1e9 AND 1e10 THEN 'looks like seconds, not milliseconds'
            WHEN p.ts_ms < 1230940800000 THEN 'before 2009-01-03'
            WHEN NOT isfinite(p.ts_ms) THEN 'not finite'
            ELSE 'after the fetch time' END AS problem,
       b.fetched_at
FROM staged_points p
JOIN raw_batches b ON b.batch_id = p.batch_id
WHERE p.batch_id = getvariable('batch_id')
  AND p.ts_ms IS NOT NULL
  AND (NOT isfinite(p.ts_ms)
       OR p.ts_ms < 1230940800000
       OR p.ts_ms > epoch_ms(b.fetched_at) + getvariable('threshold') * 3600000)
ORDER BY p.series, p.idx
