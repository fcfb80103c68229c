-- Logged forecasts of a coin whose target hour is in [from, to], each distinct forecast once.
-- Parameters: coin, currency, from, to (epoch seconds).
SELECT CAST(epoch(target_ts) AS BIGINT) AS t, horizon,
       any_value(predicted_price), any_value(lower), any_value(upper), any_value(actual_price),
       sum(served_count) AS requests
FROM predictions
WHERE coin_id = ? AND vs_currency = ? AND target_ts BETWEEN to_timestamp(?) AND to_timestamp(?)
GROUP BY model_id, as_of, horizon, target_ts
ORDER BY t, horizon
