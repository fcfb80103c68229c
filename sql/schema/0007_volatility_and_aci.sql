-- Volatility inputs and online coverage control.
-- 1. Per-coin features that carry volatility (sql/features/hourly.sql): realized volatility over
--    6, 24 and 168 hours, and its hour-of-day and hour-of-week seasonality. Every coin's features
--    are rebuilt from its first hour by the next pipeline run (the backlog below).
-- 2. Adaptive conformal inference (Gibbs & Candès 2021): the miss rate each served model aims at,
--    per coin and horizon, moved by the monitor task as scored predictions come in, and its log.
-- Runs on a checkpointed copy of the file (src/store/file.rs), so ALTER is safe here.

ALTER TABLE features ADD COLUMN realized_vol_6h DOUBLE;
ALTER TABLE features ADD COLUMN realized_vol_24h DOUBLE;
ALTER TABLE features ADD COLUMN realized_vol_168h DOUBLE;
ALTER TABLE features ADD COLUMN seasonal_vol_hour_30d DOUBLE;
ALTER TABLE features ADD COLUMN seasonal_vol_week_8w DOUBLE;

INSERT OR REPLACE INTO feature_backlog
SELECT coin_id, vs_currency, min(ts) FROM market_data GROUP BY coin_id, vs_currency;

-- The current miss rate alpha_t per served model, coin and horizon: intervals are drawn at the
-- conformal level 1 - alpha_t instead of the nominal one.
CREATE TABLE aci_state (
    model_id     VARCHAR NOT NULL,
    coin_id      VARCHAR NOT NULL,
    horizon      INTEGER NOT NULL,
    alpha        DOUBLE NOT NULL,
    updates      BIGINT NOT NULL,        -- scored predictions that moved it
    misses       BIGINT NOT NULL,        -- of which outside their interval
    last_target  TIMESTAMPTZ,            -- the newest scored target hour taken into account
    updated_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (model_id, coin_id, horizon)
);

-- Every update run: where alpha went and why.
CREATE TABLE aci_log (
    run_id      BIGINT NOT NULL,
    model_id    VARCHAR NOT NULL,
    coin_id     VARCHAR NOT NULL,
    horizon     INTEGER NOT NULL,
    alpha_from  DOUBLE NOT NULL,
    alpha_to    DOUBLE NOT NULL,
    scored      INTEGER NOT NULL,
    missed      INTEGER NOT NULL,
    logged_at   TIMESTAMPTZ NOT NULL
);
