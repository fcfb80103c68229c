-- The changed batches' metadata (no body) and all their quality results, replaced, for this
-- writer ({writer}) only: another data folder's batches may have the same ids. Rows without a
-- writer are from lakes made before batches named theirs.
DELETE FROM lake.raw_batches
WHERE (writer_id = {writer} OR writer_id IS NULL)
  AND batch_id IN (SELECT batch_id FROM lake_changed_batches);
INSERT INTO lake.raw_batches BY NAME
SELECT * EXCLUDE (body, body_archived), {writer} AS writer_id
FROM raw_batches WHERE batch_id IN (SELECT batch_id FROM lake_changed_batches);
DELETE FROM lake.quality_results
WHERE (writer_id = {writer} OR writer_id IS NULL)
  AND batch_id IN (SELECT batch_id FROM lake_changed_batches);
INSERT INTO lake.quality_results BY NAME
SELECT *, {writer} AS writer_id
FROM quality_results WHERE batch_id IN (SELECT batch_id FROM lake_changed_batches);
