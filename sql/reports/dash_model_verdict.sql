-- One model's registration: its verdict (conditions with their numbers) and the verdicts of every
-- candidate of its training run (from the experiment's summary). Parameter: model_id.
SELECT CAST(m.verdict AS VARCHAR), CAST(e.summary -> 'selection' -> 'verdicts' AS VARCHAR),
       m.family, coalesce(m.floor, false),
       strftime(m.trained_until AT TIME ZONE 'UTC', '%Y-%m-%d %H:00')
FROM model_versions m LEFT JOIN experiments e USING (run_id)
WHERE m.model_id = ?
