-- A task attempt ends. Params: state, error, failure (src/failure.rs), log excerpt, run_id, task,
-- attempt.
UPDATE task_runs
SET state = ?, finished_at = now(), error = ?, failure = ?, log = ?
WHERE run_id = ? AND task = ? AND attempt = ?
