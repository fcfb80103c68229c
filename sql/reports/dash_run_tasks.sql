-- Task attempts of the runs from a run_id on, timed from their run's start. Parameter: run_id.
SELECT t.run_id, t.task, t.attempt, t.state,
       epoch(t.started_at) - epoch(r.started_at) AS start_offset,
       epoch(coalesce(t.finished_at, now())) - epoch(r.started_at) AS end_offset,
       t.error, t.log
FROM task_runs t JOIN pipeline_runs r USING (run_id)
WHERE t.run_id >= ?
ORDER BY t.run_id DESC, t.started_at
