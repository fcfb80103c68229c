-- Raw bodies of merged batches fetched before the cut-off ($2), copied to the lake under
-- this writer ($1) unless an earlier cleanup copied them already (it stopped before it
-- cleared them here).
INSERT INTO lake.raw_bodies
SELECT $1, b.batch_id, b.coin_id, b.fetched_at, b.body_sha256, b.body
FROM raw_batches b
WHERE b.state = 'merged' AND b.body IS NOT NULL AND b.fetched_at < CAST($2 AS TIMESTAMPTZ)
  AND b.batch_id NOT IN (SELECT batch_id FROM lake.raw_bodies WHERE writer_id = $1)
