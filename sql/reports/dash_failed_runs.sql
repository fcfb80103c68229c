-- Failed runs in the last 3 hours (the PipelineFailing alert's condition).
SELECT count(*) FROM pipeline_runs WHERE state = 'failed' AND started_at > now() - INTERVAL 3 HOUR
