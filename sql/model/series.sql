-- One coin's hours with its price and the model's feature columns, oldest first.
-- {columns} is replaced by the validated feature names (each CAST to DOUBLE): `f."name"` for the
-- coin's own features, `COALESCE(mk."name", f."name")` for a `market_<name>` input: the market
-- coin's feature at the same hour, else the coin's own (cross-coin inputs are joined here, not
-- stored per coin, so each coin's feature build stays independent).
-- Parameters: market coin, coin, currency.
SELECT CAST(epoch(m.ts) AS BIGINT) // 3600 AS h, m.price, {columns}
FROM market_data m
JOIN features f USING (coin_id, vs_currency, ts)
LEFT JOIN features mk ON mk.coin_id = ? AND mk.vs_currency = m.vs_currency AND mk.ts = m.ts
WHERE m.coin_id = ? AND m.vs_currency = ?
ORDER BY m.ts
