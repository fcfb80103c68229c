-- What the live file holds now, to compare with the last version's watermarks: the newest
-- merge, quality check and batch change.
SELECT (SELECT max(merged_at) FROM market_data),
       (SELECT max(checked_at) FROM quality_results),
       (SELECT max(updated_at) FROM raw_batches)
