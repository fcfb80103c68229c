-- A model's lineage, per coin: the batches merged into the dataset version it was trained on
-- ({v}, a snapshot id), the hours they gave, and the predictions the model served (live file).
-- Param: model_id.
WITH batches AS (
    SELECT coin_id, count(*) AS batches, min(fetched_at) AS first_fetch, max(fetched_at) AS last_fetch
    FROM lake.raw_batches AT (VERSION => {v})
    WHERE state = 'merged'
    GROUP BY coin_id
), hours AS (
    SELECT coin_id, count(*) AS hours, min(ts) AS first_hour, max(ts) AS last_hour
    FROM lake.market_data AT (VERSION => {v})
    GROUP BY coin_id
), served AS (
    SELECT coin_id, sum(served_count) AS predictions FROM predictions WHERE model_id = $1 GROUP BY coin_id
)
SELECT h.coin_id, coalesce(b.batches, 0), h.hours, CAST(h.first_hour AS VARCHAR),
       CAST(h.last_hour AS VARCHAR), coalesce(s.predictions, 0)
FROM hours h LEFT JOIN batches b USING (coin_id) LEFT JOIN served s USING (coin_id)
ORDER BY h.coin_id
