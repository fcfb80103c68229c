-- The tables of the database with their row counts (estimated by DuckDB).
SELECT table_name, estimated_size, column_count
FROM duckdb_tables()
WHERE database_name = current_database() AND schema_name = 'main' AND NOT temporary
ORDER BY table_name
