-- Each coin's part of a dataset version: an order-independent hash of every feature row and its
-- market data before the cut-off, one grouped pass for all the coins asked for. {features} and
-- {market_data} name where the rows are read from (the live file's tables, a lake version,
-- exported Parquet files; `registry::DatasetTables`).
-- Params: coin ids joined by commas (ids are [a-z0-9-]), vs_currency, until (hours since the
-- epoch, exclusive).
SELECT f.coin_id,
       CAST(sum(hash(CAST(to_json(f) AS VARCHAR), m.price, m.total_volume, m.market_cap)) AS VARCHAR)
FROM {features} f JOIN {market_data} m USING (coin_id, vs_currency, ts)
WHERE f.coin_id IN (SELECT unnest(string_split(?, ',')))
  AND f.vs_currency = ? AND f.ts < to_timestamp(? * 3600)
GROUP BY f.coin_id
