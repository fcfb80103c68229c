-- The kind of failure that ended a run or a task attempt, named by the error's type
-- (src/failure.rs: usage, data_rejected, database_busy, source_unavailable, interrupted,
-- internal), so that pages and exit codes never parse messages.
-- Runs on a checkpointed copy of the file (src/store/file.rs), so ALTER is safe here.

ALTER TABLE pipeline_runs ADD COLUMN failure VARCHAR;
ALTER TABLE task_runs ADD COLUMN failure VARCHAR;
