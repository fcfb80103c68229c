-- Live accuracy per coin over the scored predictions whose target hour fell in the 24 hours and
-- the 7 days before the reference time (parameter: epoch seconds, now in production).
-- Each distinct forecast (model, coin, as_of, horizon) counts once, however often a client
-- asked for it, so a client polling one horizon does not outweigh the rest.
WITH forecasts AS (
    SELECT model_id, coin_id, as_of, horizon,
           any_value(target_ts)         AS target_ts,
           any_value(abs(error))        AS abs_error,
           any_value(abs_pct_error)     AS abs_pct_error,
           any_value(covered)           AS covered,
           any_value(direction_correct) AS direction_correct
    FROM predictions
    WHERE actual_price IS NOT NULL
    GROUP BY model_id, coin_id, as_of, horizon
),
reference AS (SELECT to_timestamp(?) AS now),
windows (window_name, hours) AS (VALUES ('24h', 24), ('7d', 168))
SELECT w.window_name,
       f.coin_id,
       count(*)                                     AS forecasts,
       avg(f.abs_error)                             AS mae,
       avg(f.abs_pct_error)                         AS mape,
       avg(CAST(f.covered AS DOUBLE))               AS coverage,
       avg(CAST(f.direction_correct AS DOUBLE))     AS direction_accuracy
FROM forecasts f, reference r, windows w
WHERE f.target_ts > r.now - to_hours(CAST(w.hours AS BIGINT))
  AND f.target_ts <= r.now
GROUP BY w.window_name, f.coin_id
ORDER BY w.window_name, f.coin_id
