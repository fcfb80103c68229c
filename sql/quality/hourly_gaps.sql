-- name: hourly_gaps
-- severity: warn
-- description: no more than `threshold` missing hours in a row, inside the batch or after the stored series
-- threshold: 0
WITH batch AS (
    SELECT r.ts, b.coin_id, b.vs_currency
    FROM staged_rows r JOIN raw_batches b ON b.batch_id = r.batch_id
    WHERE r.batch_id = getvariable('batch_id')
),
stored_before AS (
    SELECT max(m.ts) AS ts
    FROM market_data m
    WHERE m.coin_id = (SELECT any_value(coin_id) FROM batch)
      AND m.vs_currency = (SELECT any_value(vs_currency) FROM batch)
      AND m.ts < (SELECT min(ts) FROM batch)
),
series AS (
    SELECT ts FROM batch
    UNION ALL
    SELECT ts FROM stored_before WHERE ts IS NOT NULL
),
steps AS (
    SELECT lag(ts) OVER (ORDER BY ts) AS after_hour, ts AS until_hour FROM series
)
SELECT after_hour, until_hour,
       CAST((epoch(until_hour) - epoch(after_hour)) / 3600 AS BIGINT) - 1 AS missing_hours
FROM steps
WHERE after_hour IS NOT NULL
  AND (epoch(until_hour) - epoch(after_hour)) / 3600 - 1 > getvariable('threshold')
ORDER BY after_hour
