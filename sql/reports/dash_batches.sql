-- The newest batches with their rule outcomes. Parameter: how many.
SELECT b.batch_id, b.coin_id, b.source, b.state,
       strftime(b.fetched_at, '%Y-%m-%d %H:%M') AS fetched,
       coalesce(b.row_count, 0) AS hours,
       coalesce(b.reason, '') AS reason,
       count(q.rule) FILTER (WHERE q.passed) AS passed,
       count(q.rule) FILTER (WHERE NOT q.passed AND q.severity = 'warn') AS warned,
       count(q.rule) FILTER (WHERE NOT q.passed AND q.severity = 'error') AS failed,
       coalesce(string_agg(q.rule, ', ') FILTER (WHERE NOT q.passed), '') AS failed_rules
FROM raw_batches b LEFT JOIN quality_results q USING (batch_id)
GROUP BY ALL
ORDER BY b.batch_id DESC
LIMIT ?
