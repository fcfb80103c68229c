-- The newest pipeline runs (dashboards: overview, pipeline). Parameter: how many.
SELECT run_id, job, trigger, state,
       CAST(epoch(started_at) AS BIGINT) AS started,
       epoch(coalesce(finished_at, now())) - epoch(started_at) AS seconds,
       error, failure
FROM pipeline_runs
ORDER BY run_id DESC
LIMIT ?
