-- Each finished task attempt of a pipeline run with its duration in seconds. Parameter: run_id.
SELECT task, epoch(finished_at) - epoch(started_at) AS seconds
FROM task_runs
WHERE run_id = ? AND finished_at IS NOT NULL
ORDER BY started_at
