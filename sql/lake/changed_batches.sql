-- The batches whose state or quality results changed after the last version's watermarks, as a
-- temporary table made before the lake transaction. Params: the batches watermark, the checked
-- watermark (NULL: everything).
CREATE OR REPLACE TEMP TABLE lake_changed_batches AS
SELECT batch_id FROM raw_batches
WHERE updated_at > coalesce(CAST(? AS TIMESTAMPTZ), '-infinity'::TIMESTAMPTZ)
UNION
SELECT batch_id FROM quality_results
WHERE checked_at > coalesce(CAST(? AS TIMESTAMPTZ), '-infinity'::TIMESTAMPTZ)
