-- One coin's hours with its price and the model's feature columns, oldest first.
-- {columns} is replaced by the validated feature names (each CAST to DOUBLE); parameters: coin, currency.
SELECT CAST(epoch(m.ts) AS BIGINT) // 3600 AS h, m.price, {columns}
FROM market_data m
JOIN features f USING (coin_id, vs_currency, ts)
WHERE m.coin_id = ? AND m.vs_currency = ?
ORDER BY m.ts
