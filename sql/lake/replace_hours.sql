-- Replaces the changed hours of {table} (market_data or features) in the lake: DuckLake has no
-- keys, so the changed range of each coin is deleted and written again, and every (coin, hour)
-- is in each version exactly once.
DELETE FROM lake.{table} t USING lake_changed_hours c
WHERE t.coin_id = c.coin_id AND t.vs_currency = c.vs_currency AND t.ts >= c.since;
INSERT INTO lake.{table}
SELECT x.* FROM {table} x JOIN lake_changed_hours c USING (coin_id, vs_currency)
WHERE x.ts >= c.since;
