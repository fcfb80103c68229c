-- What DuckDB may use (coincast status): threads, memory limit and where it spills.
SELECT CAST(current_setting('threads') AS BIGINT),
       current_setting('memory_limit'),
       current_setting('temp_directory')
