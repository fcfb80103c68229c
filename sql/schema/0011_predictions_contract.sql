-- The `predictions` contract, for one server and for many (see README, "Tables"):
-- * identical forecasts served within one flush of the prediction log are one row with a count
--   (`served_count`, the first and the last request's times);
-- * a row is named by (instance, prediction_id): each serving instance numbers its own rows;
-- * rows arrive in segments (`prediction_segments`), and a segment is taken once: taken again,
--   it counts nothing;
-- * raw rows are kept at least `retention.prediction_days` (7) days after their target hour,
--   then rolled up into `prediction_daily` (one row per target day, instance, coin, model and
--   horizon) by cleanup.
-- Runs on a checkpointed copy of the file. DuckDB cannot change a primary key in place, so the
-- table is rebuilt with its rows.

CREATE TABLE predictions_contract (
    instance           VARCHAR NOT NULL,        -- the serving instance (serve.instance)
    prediction_id      BIGINT NOT NULL DEFAULT nextval('prediction_id_seq'),
    requested_at       TIMESTAMPTZ NOT NULL,    -- the first request served this forecast
    last_requested_at  TIMESTAMPTZ NOT NULL,    -- the last one, in the same flush
    served_count       BIGINT NOT NULL,         -- requests served this forecast, in the same flush
    request_id         VARCHAR,                 -- the x-request-id of the first call
    segment_id         VARCHAR,                 -- the segment that brought the row
    coin_id            VARCHAR NOT NULL,
    vs_currency        VARCHAR NOT NULL,
    model_id           VARCHAR NOT NULL,
    model_type         VARCHAR NOT NULL,
    horizon            INTEGER NOT NULL,
    as_of              TIMESTAMPTZ NOT NULL,
    target_ts          TIMESTAMPTZ NOT NULL,
    current_price      DOUBLE NOT NULL,
    predicted_price    DOUBLE NOT NULL,
    lower              DOUBLE NOT NULL,
    upper              DOUBLE NOT NULL,
    level              DOUBLE NOT NULL,
    latency_ms         DOUBLE NOT NULL,         -- mean over the served requests
    drift_ratio        DOUBLE NOT NULL,
    actual_price       DOUBLE,
    error              DOUBLE,
    abs_pct_error      DOUBLE,
    covered            BOOLEAN,
    direction_correct  BOOLEAN,
    scored_at          TIMESTAMPTZ,
    PRIMARY KEY (instance, prediction_id)
);

INSERT INTO predictions_contract
SELECT 'local', prediction_id, requested_at, requested_at, 1, request_id, NULL, coin_id,
       vs_currency, model_id, model_type, horizon, as_of, target_ts, current_price,
       predicted_price, lower, upper, level, latency_ms, drift_ratio, actual_price, error,
       abs_pct_error, covered, direction_correct, scored_at
FROM predictions;

DROP TABLE predictions;
ALTER TABLE predictions_contract RENAME TO predictions;

-- Every segment taken into `predictions`: a flush of this server's log, or (scale-out) a file of
-- a replica's. Its id is unique across instances and restarts.
CREATE TABLE prediction_segments (
    segment_id   VARCHAR PRIMARY KEY,
    instance     VARCHAR NOT NULL,
    rows         BIGINT NOT NULL,               -- rows it added (identical forecasts aggregated)
    requests     BIGINT NOT NULL,               -- requests it counts
    taken_at     TIMESTAMPTZ NOT NULL
);

-- Served forecasts rolled up per day of their target hour, once their raw rows are older than
-- retention.prediction_days. Sums and counts, so days and instances add up.
CREATE TABLE prediction_daily (
    day                DATE NOT NULL,           -- UTC day of target_ts
    instance           VARCHAR NOT NULL,
    coin_id            VARCHAR NOT NULL,
    vs_currency        VARCHAR NOT NULL,
    model_id           VARCHAR NOT NULL,
    horizon            INTEGER NOT NULL,
    forecasts          BIGINT NOT NULL,         -- distinct forecasts (model, coin, as_of, horizon)
    requests           BIGINT NOT NULL,         -- requests served
    scored             BIGINT NOT NULL,         -- distinct forecasts with an actual
    abs_error_sum      DOUBLE NOT NULL,
    abs_pct_error_sum  DOUBLE NOT NULL,
    covered            BIGINT NOT NULL,
    direction_correct  BIGINT NOT NULL,
    PRIMARY KEY (day, instance, coin_id, vs_currency, model_id, horizon)
);
