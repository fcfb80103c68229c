-- A body that cleanup moved to the lake (batch $2 of writer $1), brought back into the file to
-- check the batch again: only when its sha256 is the one recorded.
UPDATE raw_batches b
SET body = l.body, body_archived = NULL
FROM lake.raw_bodies l
WHERE l.writer_id = $1 AND l.batch_id = b.batch_id
  AND b.body IS NULL AND b.body_archived = 'lake'
  AND b.batch_id = $2
  AND sha256(l.body) = b.body_sha256
