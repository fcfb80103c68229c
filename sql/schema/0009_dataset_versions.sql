-- The dataset version (a DuckLake snapshot id, src/lake) a training run read and its models
-- were trained on, beside the content hash (`dataset_version`) that was already recorded.
-- NULL: the lake was off, or had no version yet. Runs on a checkpointed copy of the file.

ALTER TABLE experiments ADD COLUMN lake_version BIGINT;
ALTER TABLE model_versions ADD COLUMN lake_version BIGINT;

-- This data folder as a writer of the lake: its versions carry the id, and the next version
-- takes what changed after this writer's last one (many writers may share a lake). One row, made
-- by the first commit.
CREATE TABLE lake_writer (
    writer_id  VARCHAR NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
