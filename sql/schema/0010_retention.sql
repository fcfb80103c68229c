-- Retention (`coincast cleanup`, src/retention): what it moved or retired stays named here.
-- Runs on a checkpointed copy of the file.

-- Where a merged batch's body went when it left the file: 'lake' (lake.raw_bodies, compressed
-- Parquet, checked against body_sha256 before the body was cleared). NULL: the body is here.
ALTER TABLE raw_batches ADD COLUMN body_archived VARCHAR;

-- A retired model's artifact was deleted by cleanup; its row, events and lineage stay.
ALTER TABLE model_versions ADD COLUMN retired_at TIMESTAMPTZ;

-- Dataset versions kept from snapshot expiry by hand (`coincast datasets pin`).
CREATE TABLE dataset_pins (
    version    BIGINT PRIMARY KEY,
    pinned_at  TIMESTAMPTZ NOT NULL,
    note       VARCHAR NOT NULL
);
