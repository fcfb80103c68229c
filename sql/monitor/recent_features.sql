-- A coin's model inputs over its newest hours, for the PSI against the training distribution.
-- {columns} is replaced by the validated feature names (each CAST to DOUBLE; `mk` is the market
-- coin's features at the same hour, for `market_<name>` inputs, else the coin's own).
-- Parameters: market coin, coin, currency, coin, currency, hours.
SELECT CAST(epoch(f.ts) AS BIGINT) AS t, {columns}
FROM features f
LEFT JOIN features mk ON mk.coin_id = ? AND mk.vs_currency = f.vs_currency AND mk.ts = f.ts
WHERE f.coin_id = ? AND f.vs_currency = ?
  AND f.ts > (SELECT max(ts) FROM features WHERE coin_id = ? AND vs_currency = ?)
             - to_hours(CAST(? AS BIGINT))
ORDER BY f.ts
