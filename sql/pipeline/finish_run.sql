-- A pipeline run ends. Params: state, error (the error and its causes in one line), failure
-- (src/failure.rs), summary (JSON), run_id.
UPDATE pipeline_runs
SET state = ?, finished_at = now(), error = ?, failure = ?, summary = ?
WHERE run_id = ?
