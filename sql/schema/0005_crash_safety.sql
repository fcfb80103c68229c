-- Crash safety.
-- 1. Enum-like columns (states, aliases) lose their CHECK constraints: DuckDB cannot add or drop a
--    CHECK, so every new state would need a table rebuild. They are plain VARCHAR now, validated
--    in code by the enum that writes them (see ARCHITECTURE.md, "Schema rules"). Runs, tasks and
--    experiments can now also end 'interrupted' (found 'running' at start-up, or stopped).
-- 2. model_versions.artifact_path becomes relative to the data folder ('models/<model_id>'), so a
--    copied or mounted data folder finds its models wherever it is.
-- 3. incidents: what the store had to repair at start-up (an unreplayable WAL set aside).
-- Tables are rebuilt (rename, create, copy, drop) because a constraint cannot be dropped. This
-- runs on a checkpointed copy of the file that is renamed into place (src/store/file.rs).

ALTER TABLE raw_batches RENAME TO raw_batches_v4;
CREATE TABLE raw_batches (
    batch_id     BIGINT PRIMARY KEY DEFAULT nextval('batch_id_seq'),
    source       VARCHAR NOT NULL,        -- 'coingecko' | 'replay'
    coin_id      VARCHAR NOT NULL,
    vs_currency  VARCHAR NOT NULL,
    request      VARCHAR NOT NULL,        -- URL without the API key, or the replayed file
    range_from   TIMESTAMPTZ,             -- the requested range, when there was one
    range_to     TIMESTAMPTZ,
    fetched_at   TIMESTAMPTZ NOT NULL,    -- freshness is judged against this, not the wall clock
    http_status  INTEGER,                 -- NULL for replayed files
    body         BLOB,                    -- exact bytes; decode(body) gives text
    body_bytes   BIGINT NOT NULL,
    body_sha256  VARCHAR NOT NULL,
    row_count    INTEGER,                 -- hours staged from this body
    state        VARCHAR NOT NULL,        -- BatchState: staged | merged | quarantined | failed
    reason       VARCHAR,                 -- why failed / quarantined, or warnings on merged batches
    run_id       BIGINT,
    updated_at   TIMESTAMPTZ NOT NULL
);
INSERT INTO raw_batches
SELECT batch_id, source, coin_id, vs_currency, request, range_from, range_to, fetched_at,
       http_status, body, body_bytes, body_sha256, row_count, state, reason, run_id, updated_at
FROM raw_batches_v4;
DROP TABLE raw_batches_v4;

ALTER TABLE pipeline_runs RENAME TO pipeline_runs_v4;
CREATE TABLE pipeline_runs (
    run_id       BIGINT PRIMARY KEY DEFAULT nextval('run_id_seq'),
    job          VARCHAR NOT NULL,        -- 'ingest' (extract → quality_gate → transform → monitor) | 'retrain'
    trigger      VARCHAR NOT NULL,        -- 'run' | 'ingest' | 'replay' | 'schedule' | 'startup' | 'api' | ...
    state        VARCHAR NOT NULL,        -- RunState: running | success | partial | failed | interrupted
    started_at   TIMESTAMPTZ NOT NULL,
    finished_at  TIMESTAMPTZ,             -- for 'interrupted': when it was found or stopped
    error        VARCHAR,
    summary      JSON
);
INSERT INTO pipeline_runs
SELECT run_id, coalesce(job, 'ingest'), trigger, state, started_at, finished_at, error, summary
FROM pipeline_runs_v4;
DROP TABLE pipeline_runs_v4;

ALTER TABLE task_runs RENAME TO task_runs_v4;
CREATE TABLE task_runs (
    run_id       BIGINT NOT NULL,
    task         VARCHAR NOT NULL,
    attempt      INTEGER NOT NULL,
    state        VARCHAR NOT NULL,        -- TaskState: running | success | failed | interrupted
    started_at   TIMESTAMPTZ NOT NULL,
    finished_at  TIMESTAMPTZ,
    error        VARCHAR,
    log          VARCHAR,
    PRIMARY KEY (run_id, task, attempt)
);
INSERT INTO task_runs
SELECT run_id, task, attempt, state, started_at, finished_at, error, log FROM task_runs_v4;
DROP TABLE task_runs_v4;

ALTER TABLE experiments RENAME TO experiments_v4;
CREATE TABLE experiments (
    run_id           BIGINT PRIMARY KEY DEFAULT nextval('experiment_id_seq'),
    family           VARCHAR NOT NULL,            -- 'lstm'
    state            VARCHAR NOT NULL,            -- running | success | failed | interrupted
    started_at       TIMESTAMPTZ NOT NULL,
    finished_at      TIMESTAMPTZ,
    params           JSON NOT NULL,               -- the model spec (models/lstm.toml after overrides)
    coins            VARCHAR[] NOT NULL,
    dataset_version  VARCHAR,                     -- sha256 of the training rows and the feature SQL
    trained_until    TIMESTAMPTZ,                 -- origins before this hour were used for training
    device           VARCHAR,
    git_revision     VARCHAR,
    error            VARCHAR,
    summary          JSON                         -- sample counts, timings, throughput, gate verdict
);
INSERT INTO experiments
SELECT run_id, family, state, started_at, finished_at, params, coins, dataset_version,
       trained_until, device, git_revision, error, summary
FROM experiments_v4;
DROP TABLE experiments_v4;

ALTER TABLE model_versions RENAME TO model_versions_v4;
CREATE TABLE model_versions (
    model_id         VARCHAR PRIMARY KEY,
    run_id           BIGINT NOT NULL,
    family           VARCHAR NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL,
    dataset_version  VARCHAR NOT NULL,
    artifact_path    VARCHAR NOT NULL,            -- relative to the data folder: models/<model_id>
    score            DOUBLE,                      -- the promotion metric on the walk-forward windows
    metrics          JSON NOT NULL,               -- walk-forward rows of the model and the baselines
    training_stats   JSON NOT NULL,               -- losses, best epoch, feature statistics
    alias            VARCHAR,                     -- Alias: champion | challenger
    gate_passed      BOOLEAN NOT NULL,
    gate_reason      VARCHAR NOT NULL
);
-- Paths were stored as typed (`data/models/<id>`, or absolute): keep the part from `models/` on.
INSERT INTO model_versions
SELECT model_id, run_id, family, created_at, dataset_version,
       CASE WHEN regexp_matches(artifact_path, '(^|/)models/[^/]+/*$')
            THEN regexp_extract(artifact_path, '(models/[^/]+)/*$', 1)
            ELSE artifact_path END,
       score, metrics, training_stats, alias, gate_passed, gate_reason
FROM model_versions_v4;
DROP TABLE model_versions_v4;

CREATE SEQUENCE incident_id_seq START 1;

-- What the store repaired at start-up, loudly: an operator reads it in `coincast status`, on the
-- overview and in coincast_store_incidents_open. Resolved by the next successful ingest or replay.
CREATE TABLE incidents (
    incident_id   BIGINT PRIMARY KEY DEFAULT nextval('incident_id_seq'),
    kind          VARCHAR NOT NULL,       -- IncidentKind: unreplayable_wal
    detected_at   TIMESTAMPTZ NOT NULL,
    detail        VARCHAR NOT NULL,       -- what happened, with DuckDB's error
    kept_file     VARCHAR,                -- the set-aside file, relative to the data folder (never deleted)
    kept_bytes    BIGINT,
    lost_after    TIMESTAMPTZ,            -- changes after this moment (the last checkpoint) may be lost
    lost_until    TIMESTAMPTZ,            -- ... up to this one (the WAL's last write)
    missing       JSON,                   -- per coin: the newest hour kept, the hours that may be missing
    resolved_at   TIMESTAMPTZ,
    resolution    VARCHAR
);
