-- Experiments, their metrics, and the model registry (contract: SQL users and the dashboards).

CREATE SEQUENCE experiment_id_seq START 1;

-- One training run: what was trained on what, where, by which binary, and how it went.
CREATE TABLE experiments (
    run_id           BIGINT PRIMARY KEY DEFAULT nextval('experiment_id_seq'),
    family           VARCHAR NOT NULL,            -- 'lstm'
    state            VARCHAR NOT NULL CHECK (state IN ('running', 'success', 'failed')),
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

-- Per epoch (step = epoch) and per evaluation (step = 0, name = '<model>/<coin>/h<h>/<metric>').
CREATE TABLE run_metrics (
    run_id  BIGINT NOT NULL,
    step    INTEGER NOT NULL,
    name    VARCHAR NOT NULL,
    value   DOUBLE,
    PRIMARY KEY (run_id, step, name)
);

CREATE TABLE model_versions (
    model_id         VARCHAR PRIMARY KEY,
    run_id           BIGINT NOT NULL,
    family           VARCHAR NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL,
    dataset_version  VARCHAR NOT NULL,
    artifact_path    VARCHAR NOT NULL,            -- <data_dir>/models/<model_id>/
    score            DOUBLE,                      -- the promotion metric on the walk-forward windows
    metrics          JSON NOT NULL,               -- walk-forward rows of the model and the baselines
    training_stats   JSON NOT NULL,               -- losses, best epoch, feature statistics
    alias            VARCHAR CHECK (alias IN ('champion', 'challenger')),
    gate_passed      BOOLEAN NOT NULL,
    gate_reason      VARCHAR NOT NULL
);

-- Promotion history: registered, promoted, demoted, rolled back.
CREATE TABLE model_events (
    model_id  VARCHAR NOT NULL,
    event_at  TIMESTAMPTZ NOT NULL,
    event     VARCHAR NOT NULL,
    reason    VARCHAR
);
