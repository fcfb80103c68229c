-- Monitoring: every served prediction, scored when its hour arrives, and feature drift (PSI)
-- per pipeline run (contract: SQL users and the dashboards).

CREATE SEQUENCE prediction_id_seq START 1;

-- One row per successful POST /predict, appended in batches off the hot path. The actual price
-- and the errors are filled in by the pipeline's monitor task once market_data has target_ts.
CREATE TABLE predictions (
    prediction_id      BIGINT PRIMARY KEY DEFAULT nextval('prediction_id_seq'),
    requested_at       TIMESTAMPTZ NOT NULL,
    request_id         VARCHAR,                 -- the x-request-id of the call
    coin_id            VARCHAR NOT NULL,
    vs_currency        VARCHAR NOT NULL,
    model_id           VARCHAR NOT NULL,
    model_type         VARCHAR NOT NULL,
    horizon            INTEGER NOT NULL,        -- hours ahead, 1..24
    as_of              TIMESTAMPTZ NOT NULL,    -- the newest hour the forecast used
    target_ts          TIMESTAMPTZ NOT NULL,    -- as_of + horizon: the predicted hour
    current_price      DOUBLE NOT NULL,         -- the price at as_of
    predicted_price    DOUBLE NOT NULL,
    lower              DOUBLE NOT NULL,
    upper              DOUBLE NOT NULL,
    level              DOUBLE NOT NULL,         -- nominal coverage of [lower, upper]
    latency_ms         DOUBLE NOT NULL,         -- inference time
    drift_ratio        DOUBLE NOT NULL,         -- share of inputs outside the training [p01, p99]
    actual_price       DOUBLE,                  -- market_data.price at target_ts, once it arrived
    error              DOUBLE,                  -- predicted - actual
    abs_pct_error      DOUBLE,                  -- |error| / actual
    covered            BOOLEAN,                 -- lower <= actual <= upper
    direction_correct  BOOLEAN,                 -- sign(predicted - current) = sign(actual - current)
    scored_at          TIMESTAMPTZ
);

-- Population stability index of each model input: the last 24 h of the served coins against the
-- model's training origins, binned at the training deciles.
CREATE TABLE feature_psi (
    run_id        BIGINT NOT NULL,              -- the pipeline run that computed it
    model_id      VARCHAR NOT NULL,
    feature       VARCHAR NOT NULL,
    psi           DOUBLE NOT NULL,
    window_from   TIMESTAMPTZ NOT NULL,
    window_to     TIMESTAMPTZ NOT NULL,
    observations  INTEGER NOT NULL,
    computed_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (run_id, model_id, feature)
);

-- What a run did: 'ingest' (extract → quality_gate → transform → monitor) or 'retrain' (train).
ALTER TABLE pipeline_runs ADD COLUMN job VARCHAR DEFAULT 'ingest';
