-- Live accuracy per coin and day of the target hour, each distinct forecast once: the raw rows
-- of the kept days, and `prediction_daily` for the days cleanup rolled up.
WITH forecasts AS (
    SELECT coin_id, any_value(target_ts) AS target_ts, any_value(abs_pct_error) AS ape,
           any_value(covered) AS covered, any_value(direction_correct) AS direction_correct
    FROM predictions WHERE actual_price IS NOT NULL
    GROUP BY model_id, coin_id, as_of, horizon
), raw_days AS (
    SELECT coin_id, CAST(epoch(date_trunc('day', target_ts)) AS BIGINT) AS day, count(*) AS n,
           sum(ape) AS ape_sum, count(*) FILTER (WHERE covered) AS covered,
           count(*) FILTER (WHERE direction_correct) AS direction_correct
    FROM forecasts
    GROUP BY ALL
), rolled_days AS (
    SELECT coin_id, CAST(epoch(day) AS BIGINT) AS day, sum(scored) AS n,
           sum(abs_pct_error_sum) AS ape_sum, sum(covered) AS covered,
           sum(direction_correct) AS direction_correct
    FROM prediction_daily WHERE scored > 0
    GROUP BY ALL
), days AS (
    SELECT * FROM raw_days UNION ALL SELECT * FROM rolled_days
)
SELECT coin_id, day, CAST(sum(n) AS BIGINT), sum(ape_sum) / sum(n),
       sum(covered) / sum(n), sum(direction_correct) / sum(n)
FROM days
GROUP BY coin_id, day
ORDER BY coin_id, day
