-- A pipeline run begins (src/pipeline/record.rs). Params: job, trigger.
INSERT INTO pipeline_runs (job, trigger, state, started_at)
VALUES (?, ?, 'running', now())
RETURNING run_id
