-- A coin's part of a dataset version: an order-independent hash of every feature row and its market
-- data before the cut-off. {features} and {market_data} name where the rows are read from (the live
-- file's tables, a lake version, exported Parquet files; `registry::DatasetTables`).
-- Params: coin_id, vs_currency, until (hours since the epoch, exclusive).
SELECT CAST(sum(hash(CAST(to_json(f) AS VARCHAR), m.price, m.total_volume, m.market_cap)) AS VARCHAR)
FROM {features} f JOIN {market_data} m USING (coin_id, vs_currency, ts)
WHERE f.coin_id = ? AND f.vs_currency = ? AND f.ts < to_timestamp(? * 3600)
