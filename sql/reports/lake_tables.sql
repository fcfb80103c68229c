-- The lake's tables with their row counts (estimated), for a replica's SQL page: run in the
-- lake's sandbox, where the lake is attached as `lake`.
SELECT table_name, estimated_size, column_count
FROM duckdb_tables()
WHERE database_name = 'lake' AND schema_name = 'main'
ORDER BY table_name
