-- name: null_share
-- severity: error
-- description: at most `threshold` (a share, 0.01 = 1%) of the hours lack a value in any column
-- threshold: 0.01
WITH counts AS (
    SELECT count(*) AS hours,
           count(*) FILTER (WHERE price IS NULL) AS price,
           count(*) FILTER (WHERE market_cap IS NULL) AS market_cap,
           count(*) FILTER (WHERE total_volume IS NULL) AS total_volume
    FROM staged_rows
    WHERE batch_id = getvariable('batch_id')
)
SELECT column_name, nulls, hours, round(nulls / hours, 6) AS null_share
FROM counts UNPIVOT (nulls FOR column_name IN (price, market_cap, total_volume))
WHERE hours > 0 AND nulls / hours > getvariable('threshold')
