-- The foundation tables. Names and columns of raw_batches, market_data, quality_results, features,
-- pipeline_runs and task_runs are a contract with SQL users and dashboards (see design.md).
-- All timestamps are UTC TIMESTAMPTZ.

CREATE SEQUENCE batch_id_seq START 1;
CREATE SEQUENCE run_id_seq START 1;

-- Every source response, kept whether or not it passed: the body exactly as received.
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
    state        VARCHAR NOT NULL CHECK (state IN ('staged', 'merged', 'quarantined', 'failed')),
    reason       VARCHAR,                 -- why failed / quarantined, or warnings on merged batches
    run_id       BIGINT,
    updated_at   TIMESTAMPTZ NOT NULL
);

-- Which arrays a body had (the 'schema' of a market_chart response).
CREATE TABLE staged_series (
    batch_id  BIGINT NOT NULL,
    series    VARCHAR NOT NULL,           -- 'prices' | 'market_caps' | 'total_volumes'
    present   BOOLEAN NOT NULL,
    points    INTEGER NOT NULL,
    PRIMARY KEY (batch_id, series)
);

-- Every point of a body, loosely typed, so that SQL rules can judge types and nulls.
-- raw holds the element's JSON text when it is not a plain [number, number] pair.
CREATE TABLE staged_points (
    batch_id  BIGINT NOT NULL,
    series    VARCHAR NOT NULL,
    idx       INTEGER NOT NULL,
    ts_ms     DOUBLE,
    value     DOUBLE,
    raw       VARCHAR
);

-- One row per coin and hour of a batch: the three series joined by timestamp (see sql/ingest/stage_rows.sql).
CREATE TABLE staged_rows (
    batch_id      BIGINT NOT NULL,
    coin_id       VARCHAR NOT NULL,
    vs_currency   VARCHAR NOT NULL,
    ts            TIMESTAMPTZ NOT NULL,   -- the hour
    source_ts     TIMESTAMPTZ NOT NULL,   -- the provider's own timestamp of the latest point in that hour
    price         DOUBLE,
    market_cap    DOUBLE,
    total_volume  DOUBLE,
    points        INTEGER NOT NULL,       -- price points that fell into this hour
    PRIMARY KEY (batch_id, ts)
);

CREATE TABLE market_data (
    coin_id       VARCHAR NOT NULL,
    vs_currency   VARCHAR NOT NULL,
    ts            TIMESTAMPTZ NOT NULL,
    price         DOUBLE NOT NULL,
    market_cap    DOUBLE,
    total_volume  DOUBLE,                 -- CoinGecko's rolling 24 h volume
    source_ts     TIMESTAMPTZ NOT NULL,
    batch_id      BIGINT NOT NULL,
    merged_at     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (coin_id, vs_currency, ts)
);

CREATE TABLE quality_results (
    batch_id    BIGINT NOT NULL,
    rule        VARCHAR NOT NULL,
    severity    VARCHAR NOT NULL,         -- 'error' | 'warn'
    passed      BOOLEAN NOT NULL,
    violations  BIGINT NOT NULL,
    threshold   DOUBLE,
    detail      VARCHAR,
    checked_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (batch_id, rule)
);

-- The first quality.max_failing_rows rows each failing rule returned, as JSON.
CREATE TABLE quality_violations (
    batch_id  BIGINT NOT NULL,
    rule      VARCHAR NOT NULL,
    row_no    INTEGER NOT NULL,
    row_json  JSON NOT NULL,
    PRIMARY KEY (batch_id, rule, row_no)
);

-- Earliest hour per coin whose features are out of date; the transform task drains it.
CREATE TABLE feature_backlog (
    coin_id      VARCHAR NOT NULL,
    vs_currency  VARCHAR NOT NULL,
    from_ts      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (coin_id, vs_currency)
);

CREATE TABLE pipeline_runs (
    run_id       BIGINT PRIMARY KEY DEFAULT nextval('run_id_seq'),
    trigger      VARCHAR NOT NULL,        -- 'run' | 'ingest' | 'replay' | 'schedule' | ...
    state        VARCHAR NOT NULL CHECK (state IN ('running', 'success', 'partial', 'failed')),
    started_at   TIMESTAMPTZ NOT NULL,
    finished_at  TIMESTAMPTZ,
    error        VARCHAR,
    summary      JSON
);

CREATE TABLE task_runs (
    run_id       BIGINT NOT NULL,
    task         VARCHAR NOT NULL,
    attempt      INTEGER NOT NULL,
    state        VARCHAR NOT NULL CHECK (state IN ('running', 'success', 'failed')),
    started_at   TIMESTAMPTZ NOT NULL,
    finished_at  TIMESTAMPTZ,
    error        VARCHAR,
    log          VARCHAR,
    PRIMARY KEY (run_id, task, attempt)
);
