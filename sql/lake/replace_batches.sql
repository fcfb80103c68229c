-- The changed batches' metadata (no body) and all their quality results, replaced.
DELETE FROM lake.raw_batches WHERE batch_id IN (SELECT batch_id FROM lake_changed_batches);
INSERT INTO lake.raw_batches
SELECT * EXCLUDE (body, body_archived) FROM raw_batches WHERE batch_id IN (SELECT batch_id FROM lake_changed_batches);
DELETE FROM lake.quality_results WHERE batch_id IN (SELECT batch_id FROM lake_changed_batches);
INSERT INTO lake.quality_results
SELECT * FROM quality_results WHERE batch_id IN (SELECT batch_id FROM lake_changed_batches);
