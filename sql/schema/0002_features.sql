-- One row per coin and hour with every feature of design.md (a table, not a view: an incremental
-- run rewrites only the hours from feature_backlog onwards). Key (coin_id, vs_currency, ts) is kept by
-- the feature builder, which deletes and reinserts a coin's hours in one transaction; there is no
-- index because bulk rewrites are faster without one. Definitions: sql/features/hourly.sql.
CREATE TABLE features (
    coin_id VARCHAR NOT NULL, vs_currency VARCHAR NOT NULL, ts TIMESTAMPTZ NOT NULL,
    -- temporal (UTC)
    hour INTEGER, day_of_week INTEGER, day INTEGER, month INTEGER,
    hour_sin DOUBLE, hour_cos DOUBLE, day_sin DOUBLE, day_cos DOUBLE, month_sin DOUBLE, month_cos DOUBLE,
    -- lags: the value at ts - k hours (NULL when that hour is missing)
    price_lag_1h DOUBLE, price_lag_3h DOUBLE, price_lag_6h DOUBLE, price_lag_12h DOUBLE, price_lag_24h DOUBLE,
    volume_lag_1h DOUBLE, volume_lag_3h DOUBLE, volume_lag_6h DOUBLE, volume_lag_12h DOUBLE, volume_lag_24h DOUBLE,
    market_cap_lag_1h DOUBLE, market_cap_lag_3h DOUBLE, market_cap_lag_6h DOUBLE, market_cap_lag_12h DOUBLE, market_cap_lag_24h DOUBLE,
    -- rolling windows of w hours ending at ts (NULL unless all w hours are present)
    price_rolling_mean_3h DOUBLE, price_rolling_std_3h DOUBLE, price_rolling_min_3h DOUBLE, price_rolling_max_3h DOUBLE,
    price_rolling_mean_6h DOUBLE, price_rolling_std_6h DOUBLE, price_rolling_min_6h DOUBLE, price_rolling_max_6h DOUBLE,
    price_rolling_mean_12h DOUBLE, price_rolling_std_12h DOUBLE, price_rolling_min_12h DOUBLE, price_rolling_max_12h DOUBLE,
    price_rolling_mean_24h DOUBLE, price_rolling_std_24h DOUBLE, price_rolling_min_24h DOUBLE, price_rolling_max_24h DOUBLE,
    volume_rolling_mean_3h DOUBLE, volume_rolling_mean_6h DOUBLE, volume_rolling_mean_12h DOUBLE, volume_rolling_mean_24h DOUBLE,
    -- returns
    price_change_1h DOUBLE, price_change_3h DOUBLE, price_change_6h DOUBLE, price_change_12h DOUBLE, price_change_24h DOUBLE,
    log_return_1h DOUBLE,
    -- momentum and volatility
    momentum_3h DOUBLE, momentum_6h DOUBLE, momentum_12h DOUBLE,
    volatility_6h DOUBLE, volatility_12h DOUBLE, volatility_24h DOUBLE,
    -- volume
    volume_price_ratio DOUBLE, volume_change_1h DOUBLE, volume_change_6h DOUBLE, volume_change_24h DOUBLE,
    price_volume_corr_24h DOUBLE,
    -- technical
    sma_6h DOUBLE, sma_12h DOUBLE, sma_24h DOUBLE, ema_6h DOUBLE, ema_12h DOUBLE, ema_24h DOUBLE,
    bb_middle DOUBLE, bb_upper DOUBLE, bb_lower DOUBLE, bb_width DOUBLE, price_bb_position DOUBLE,
    price_position_24h DOUBLE
);
