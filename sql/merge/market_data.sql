-- Merges batch getvariable('batch_id') (which passed the gate) into market_data. Idempotent: a row
-- changes only when the batch brings a newer provider timestamp for that hour, or the same one with
-- different values (a correction). Late and out-of-order hours are inserted where they belong.
-- Hours without a price are not merged (null_share bounds how many there may be).
-- First the backlog of hours whose features must be rebuilt, then the upsert.
INSERT INTO feature_backlog (coin_id, vs_currency, from_ts)
SELECT s.coin_id, s.vs_currency, min(s.ts)
FROM staged_rows s
LEFT JOIN market_data m USING (coin_id, vs_currency, ts)
WHERE s.batch_id = getvariable('batch_id')
  AND s.price IS NOT NULL
  AND (m.ts IS NULL
       OR s.source_ts > m.source_ts
       OR (s.source_ts = m.source_ts
           AND (s.price IS DISTINCT FROM m.price
                OR (s.market_cap IS NOT NULL AND s.market_cap IS DISTINCT FROM m.market_cap)
                OR (s.total_volume IS NOT NULL AND s.total_volume IS DISTINCT FROM m.total_volume))))
GROUP BY s.coin_id, s.vs_currency
ON CONFLICT (coin_id, vs_currency) DO UPDATE SET from_ts = least(feature_backlog.from_ts, excluded.from_ts);

INSERT INTO market_data (coin_id, vs_currency, ts, price, market_cap, total_volume, source_ts, batch_id, merged_at)
SELECT coin_id, vs_currency, ts, price, market_cap, total_volume, source_ts, batch_id, now()
FROM staged_rows
WHERE batch_id = getvariable('batch_id') AND price IS NOT NULL
ON CONFLICT (coin_id, vs_currency, ts) DO UPDATE SET
    price = excluded.price,
    market_cap = coalesce(excluded.market_cap, market_data.market_cap),
    total_volume = coalesce(excluded.total_volume, market_data.total_volume),
    source_ts = excluded.source_ts,
    batch_id = excluded.batch_id,
    merged_at = excluded.merged_at
WHERE excluded.source_ts > market_data.source_ts
   OR (excluded.source_ts = market_data.source_ts
       AND (excluded.price IS DISTINCT FROM market_data.price
            OR (excluded.market_cap IS NOT NULL AND excluded.market_cap IS DISTINCT FROM market_data.market_cap)
            OR (excluded.total_volume IS NOT NULL AND excluded.total_volume IS DISTINCT FROM market_data.total_volume)));
