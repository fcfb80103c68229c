-- Records a segment of served predictions as taken; no row when it was taken before (its rows
-- are then not added again). Params: segment_id, instance, rows, requests.
INSERT INTO prediction_segments VALUES (?, ?, ?, ?, now())
ON CONFLICT DO NOTHING
RETURNING segment_id
