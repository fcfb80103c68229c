-- Snapshots that cleanup may expire: older than the cut-off ($2), and none of the newest snapshot,
-- each writer's newest dataset version (the next commit of that writer starts from its
-- watermarks) and the versions a writer keeps (lake.coincast_refs, plus this writer's refs
-- staged in cleanup_refs).
WITH writers_newest AS (
    SELECT max(snapshot_id) AS snapshot_id
    FROM lake.snapshots()
    WHERE author = 'coincast' AND commit_extra_info IS NOT NULL
    GROUP BY json_extract_string(commit_extra_info, '$.writer')
),
kept AS (
    SELECT max(snapshot_id) AS snapshot_id FROM lake.snapshots()
    UNION ALL SELECT snapshot_id FROM writers_newest
    UNION ALL SELECT version FROM lake.coincast_refs WHERE writer_id <> $1
    UNION ALL SELECT version FROM cleanup_refs
)
SELECT snapshot_id
FROM lake.snapshots()
WHERE snapshot_time < CAST($2 AS TIMESTAMPTZ)
  AND snapshot_id NOT IN (SELECT snapshot_id FROM kept WHERE snapshot_id IS NOT NULL)
ORDER BY snapshot_id
