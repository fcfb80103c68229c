-- Scores every logged prediction whose target hour has arrived in market_data. A prediction is
-- scored once: later corrections of that hour do not change its score.
UPDATE predictions AS p SET
    actual_price      = m.price,
    error             = p.predicted_price - m.price,
    abs_pct_error     = abs(p.predicted_price - m.price) / m.price,
    covered           = m.price BETWEEN p.lower AND p.upper,
    direction_correct = sign(p.predicted_price - p.current_price) = sign(m.price - p.current_price),
    scored_at         = now()
FROM market_data AS m
WHERE p.actual_price IS NULL
  AND m.coin_id = p.coin_id
  AND m.vs_currency = p.vs_currency
  AND m.ts = p.target_ts
