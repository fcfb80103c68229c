-- The files the lake's catalog names (data and delete files, of every snapshot still kept) and
-- their bytes.
SELECT count(*), coalesce(sum(file_size_bytes), 0)::BIGINT
FROM (
    SELECT file_size_bytes FROM __ducklake_metadata_lake.ducklake_data_file
    UNION ALL
    SELECT file_size_bytes FROM __ducklake_metadata_lake.ducklake_delete_file
)
