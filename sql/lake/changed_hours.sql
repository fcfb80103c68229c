-- Per coin, the earliest hour whose market data was merged after the last version's watermark
-- (its features change from there on), as a temporary table made before the lake transaction.
-- Param: the merged watermark (NULL: everything).
CREATE OR REPLACE TEMP TABLE lake_changed_hours AS
SELECT coin_id, vs_currency, min(ts) AS since, max(ts) AS until, count(*) AS hours
FROM market_data
WHERE merged_at > coalesce(CAST(? AS TIMESTAMPTZ), '-infinity'::TIMESTAMPTZ)
GROUP BY ALL
