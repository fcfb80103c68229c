-- A coin's model inputs over its newest hours, for the PSI against the training distribution.
-- {columns} is replaced by the validated feature names (each CAST to DOUBLE).
-- Parameters: coin, currency, coin, currency, hours.
SELECT CAST(epoch(f.ts) AS BIGINT) AS t, {columns}
FROM features f
WHERE f.coin_id = ? AND f.vs_currency = ?
  AND f.ts > (SELECT max(ts) FROM features WHERE coin_id = ? AND vs_currency = ?)
             - to_hours(CAST(? AS BIGINT))
ORDER BY f.ts
