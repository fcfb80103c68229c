-- The dataset versions: the lake's snapshots that coincast committed, newest last, with what
-- each one took in (commit_extra_info, JSON: `lake::VersionInfo`).
SELECT snapshot_id, CAST(snapshot_time AS VARCHAR), commit_extra_info
FROM lake.snapshots()
WHERE author = 'coincast' AND commit_extra_info IS NOT NULL
ORDER BY snapshot_id
