-- A task attempt begins. Params: run_id, task, attempt.
INSERT INTO task_runs (run_id, task, attempt, state, started_at)
VALUES (?, ?, ?, 'running', now())
