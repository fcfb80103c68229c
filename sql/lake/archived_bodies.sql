-- The bodies the lake holds for this writer ($1) that are byte for byte those recorded here
-- (the same sha256): only these are cleared from the file.
SELECT l.batch_id
FROM lake.raw_bodies l
JOIN raw_batches b ON b.batch_id = l.batch_id
WHERE l.writer_id = $1 AND b.body IS NOT NULL AND b.state = 'merged'
  AND b.fetched_at < CAST($2 AS TIMESTAMPTZ)
  AND sha256(l.body) = b.body_sha256 AND l.body_sha256 = b.body_sha256
ORDER BY l.batch_id
