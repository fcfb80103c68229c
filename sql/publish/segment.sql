-- A replica's segment of served forecasts as it travels to the writer (one Parquet file): the
-- columns of `predictions` that a segment fills (monitor::predictions::ServedForecast), with the
-- instance and the segment's id. In a scratch in-memory database on the replica.
CREATE TEMP TABLE IF NOT EXISTS segment (
    instance           VARCHAR NOT NULL,
    segment_id         VARCHAR NOT NULL,
    requested_at       TIMESTAMPTZ NOT NULL,
    last_requested_at  TIMESTAMPTZ NOT NULL,
    served_count       BIGINT NOT NULL,
    request_id         VARCHAR,
    coin_id            VARCHAR NOT NULL,
    vs_currency        VARCHAR NOT NULL,
    model_id           VARCHAR NOT NULL,
    model_type         VARCHAR NOT NULL,
    horizon            BIGINT NOT NULL,
    as_of              TIMESTAMPTZ NOT NULL,
    current_price      DOUBLE NOT NULL,
    predicted_price    DOUBLE NOT NULL,
    lower              DOUBLE NOT NULL,
    upper              DOUBLE NOT NULL,
    level              DOUBLE NOT NULL,
    latency_ms         DOUBLE NOT NULL,
    drift_ratio        DOUBLE NOT NULL
);
