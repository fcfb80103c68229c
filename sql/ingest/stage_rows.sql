-- Joins the three series of batch getvariable('batch_id') by timestamp into one row per hour.
-- A point's hour is its timestamp truncated to the hour (CoinGecko's hourly points are not on :00);
-- within an hour the latest point of each series wins. Points whose timestamp is missing or
-- implausible stay in staged_points only (the timestamp_range and numeric_types rules report them).
INSERT INTO staged_rows (batch_id, coin_id, vs_currency, ts, source_ts, price, market_cap, total_volume, points)
WITH points AS (
    SELECT series, ts_ms, value,
           date_trunc('hour', to_timestamp(ts_ms / 1000)) AS hour
    FROM staged_points
    WHERE batch_id = getvariable('batch_id')
      AND ts_ms IS NOT NULL AND isfinite(ts_ms)
      AND ts_ms BETWEEN 0 AND 32503680000000          -- 1970 .. 3000: to_timestamp's comfortable range
),
latest AS (
    SELECT series, hour, arg_max(value, ts_ms) AS value, max(ts_ms) AS ts_ms, count(*) AS points
    FROM points
    GROUP BY series, hour
)
SELECT b.batch_id, b.coin_id, b.vs_currency, l.hour,
       to_timestamp(coalesce(max(l.ts_ms) FILTER (WHERE l.series = 'prices'), max(l.ts_ms)) / 1000),
       max(l.value) FILTER (WHERE l.series = 'prices'),
       max(l.value) FILTER (WHERE l.series = 'market_caps'),
       max(l.value) FILTER (WHERE l.series = 'total_volumes'),
       coalesce(max(l.points) FILTER (WHERE l.series = 'prices'), 0)
FROM latest l
CROSS JOIN (SELECT batch_id, coin_id, vs_currency FROM raw_batches WHERE batch_id = getvariable('batch_id')) b
GROUP BY b.batch_id, b.coin_id, b.vs_currency, l.hour
