-- Failing rows of quarantined batches, the first few per rule. Parameter: rows per rule.
SELECT v.batch_id, b.coin_id, v.rule, v.row_no, CAST(v.row_json AS VARCHAR)
FROM quality_violations v JOIN raw_batches b USING (batch_id)
WHERE b.state = 'quarantined' AND v.row_no < ?
ORDER BY v.batch_id DESC, v.rule, v.row_no
LIMIT 200
