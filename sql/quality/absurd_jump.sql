-- name: absurd_jump
-- severity: error
-- description: no price moves more than `threshold` in |log return| between neighbouring hours (0.5 = x1.65 or x0.61)
-- threshold: 0.5
WITH batch AS (
    SELECT r.ts, r.price, b.coin_id, b.vs_currency
    FROM staged_rows r JOIN raw_batches b ON b.batch_id = r.batch_id
    WHERE r.batch_id = getvariable('batch_id') AND r.price > 0 AND isfinite(r.price)
),
stored_before AS (
    SELECT m.ts, m.price
    FROM market_data m
    WHERE m.coin_id = (SELECT any_value(coin_id) FROM batch)
      AND m.vs_currency = (SELECT any_value(vs_currency) FROM batch)
      AND m.ts < (SELECT min(ts) FROM batch)
    ORDER BY m.ts DESC
    LIMIT 1
),
series AS (
    SELECT ts, price FROM batch
    UNION ALL
    SELECT ts, price FROM stored_before
),
steps AS (
    SELECT lag(ts) OVER (ORDER BY ts) AS prev_ts, lag(price) OVER (ORDER BY ts) AS prev_price, ts, price
    FROM series
)
SELECT prev_ts, prev_price, ts, price, round(ln(price / prev_price), 4) AS log_return
FROM steps
WHERE prev_price IS NOT NULL AND abs(ln(price / prev_price)) > getvariable('threshold')
ORDER BY ts
