-- One coin's hourly prices in [from, to] (epoch seconds). Parameters: coin, currency, from, to.
SELECT CAST(epoch(ts) AS BIGINT) AS t, price
FROM market_data
WHERE coin_id = ? AND vs_currency = ? AND ts BETWEEN to_timestamp(?) AND to_timestamp(?)
ORDER BY ts
