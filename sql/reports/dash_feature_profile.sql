-- A profile of every feature over the rows of some coins up to an hour, one row per feature in
-- the table's column order: type, min, max, mean, std, approximate quartiles, rows, % nulls.
-- One pass of plain aggregates (SUMMARIZE would also count distinct values, which the page does
-- not show and which doubled the time). Parameters: coins (comma-separated), until (epoch s).
WITH stats AS (
    SELECT {'n': count(COLUMNS('(.*)')),
            'lo': min(COLUMNS('(.*)'))::DOUBLE,
            'hi': max(COLUMNS('(.*)'))::DOUBLE,
            'mean': avg(COLUMNS('(.*)')),
            'std': stddev_samp(COLUMNS('(.*)')),
            'q': approx_quantile(COLUMNS('(.*)'), [0.25, 0.5, 0.75])::DOUBLE[]} AS '\1',
           count(*) AS rows_profiled
    FROM (
        SELECT COLUMNS(* EXCLUDE (coin_id, vs_currency, ts))
        FROM features
        WHERE list_contains(string_split(?, ','), coin_id) AND ts <= to_timestamp(?)
    )
), long AS (
    UNPIVOT stats ON COLUMNS(* EXCLUDE (rows_profiled)) INTO NAME feature VALUE s
)
SELECT l.feature, c.data_type, l.s.lo, l.s.hi, l.s.mean, l.s.std,
       l.s.q[1], l.s.q[2], l.s.q[3], l.rows_profiled,
       100.0 * (l.rows_profiled - l.s.n) / nullif(l.rows_profiled, 0) AS null_percentage
FROM long l
JOIN duckdb_columns() c
  ON c.database_name = current_database() AND c.schema_name = 'main'
 AND c.table_name = 'features' AND c.column_name = l.feature
ORDER BY c.column_index
