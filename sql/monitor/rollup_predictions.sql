-- Rolls the served predictions whose target hour is before the cutoff (a UTC day boundary, epoch
-- seconds) up into `prediction_daily`; the caller then deletes them, in the same transaction.
-- Each distinct forecast (instance, model, coin, as_of, horizon) counts once, as in live accuracy;
-- requests add up its served_count. A day rolled up again (late segments) adds to its sums.
INSERT INTO prediction_daily
WITH forecasts AS (
    SELECT instance, coin_id, vs_currency, model_id, horizon, as_of,
           DATE '1970-01-01' + CAST(floor(epoch(any_value(target_ts)) / 86400) AS INTEGER) AS day,
           sum(served_count)            AS requests,
           any_value(actual_price)      AS actual_price,
           any_value(abs(error))        AS abs_error,
           any_value(abs_pct_error)     AS abs_pct_error,
           any_value(covered)           AS covered,
           any_value(direction_correct) AS direction_correct
    FROM predictions
    WHERE target_ts < to_timestamp(?)
    GROUP BY instance, coin_id, vs_currency, model_id, horizon, as_of
)
SELECT day, instance, coin_id, vs_currency, model_id, horizon,
       count(*)                                         AS forecasts,
       sum(requests)                                    AS requests,
       count(actual_price)                              AS scored,
       coalesce(sum(abs_error), 0)                      AS abs_error_sum,
       coalesce(sum(abs_pct_error), 0)                  AS abs_pct_error_sum,
       count(*) FILTER (WHERE covered)                  AS covered,
       count(*) FILTER (WHERE direction_correct)        AS direction_correct
FROM forecasts
GROUP BY day, instance, coin_id, vs_currency, model_id, horizon
ON CONFLICT DO UPDATE SET
    forecasts         = forecasts + excluded.forecasts,
    requests          = requests + excluded.requests,
    scored            = scored + excluded.scored,
    abs_error_sum     = abs_error_sum + excluded.abs_error_sum,
    abs_pct_error_sum = abs_pct_error_sum + excluded.abs_pct_error_sum,
    covered           = covered + excluded.covered,
    direction_correct = direction_correct + excluded.direction_correct
