-- Live accuracy per coin and day of the target hour, each distinct forecast once.
WITH forecasts AS (
    SELECT coin_id, any_value(target_ts) AS target_ts, any_value(abs_pct_error) AS ape,
           any_value(covered) AS covered, any_value(direction_correct) AS direction_correct
    FROM predictions WHERE actual_price IS NOT NULL
    GROUP BY model_id, coin_id, as_of, horizon
)
SELECT coin_id, CAST(epoch(date_trunc('day', target_ts)) AS BIGINT) AS day, count(*),
       avg(ape), avg(CAST(covered AS DOUBLE)), avg(CAST(direction_correct AS DOUBLE))
FROM forecasts
GROUP BY ALL
ORDER BY coin_id, day
