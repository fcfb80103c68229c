-- The tables of the database with their row counts (estimated by DuckDB).
SELECT table_name, estimated_size, column_count
FROM duckdb_tables()
WHERE schema_name = 'main'
ORDER BY table_name
