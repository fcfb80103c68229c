-- Every feature of design.md for the hours in feature_scope, as window functions over market_data.
--
-- Input: TEMP TABLE feature_scope(coin_id, vs_currency, from_h BIGINT): for each coin, recompute the
-- hours h >= from_h, where h = hours since 1970-01-01 UTC. Output: rows shaped like `features`.
--
-- Semantics (pandas on a gap-free hourly series, stricter across gaps):
-- * A lag k is the value at h - k, a window w covers hours [h-w+1, h]: RANGE frames over h, so a
--   missing hour gives NULL instead of silently reaching further back as pandas' row-based shift does.
-- * Rolling statistics need all w values (pandas min_periods = w); std is the sample std (ddof = 1).
-- * ema_s = pandas ewm(span=s, adjust=True, ignore_na=False).mean() on the hourly series:
--   sum_j d^(h-j) x_j / sum_j d^(h-j), d = 1 - 2/(s+1), over the present hours j <= h. Terms older
--   than 480 h weigh less than 0.92^480 < 1e-17 and are dropped, which makes an incremental rebuild
--   equal to a full one. To keep the weights in double range each row is replicated to its own
--   480-hour block and the next one, and weights are taken relative to the block start ("anchor"):
--   the factor d^(h-anchor) cancels between numerator and denominator.
-- * Ratios whose denominator is 0 are NULL (pandas gives inf or NaN there).
-- * No lookahead: every frame ends at the current row.
WITH scope AS (
    SELECT coin_id, vs_currency, from_h,
           (from_h // 480) * 480 - 480 AS read_from_h
    FROM feature_scope
),
base AS (
    SELECT m.coin_id, m.vs_currency, m.ts,
           CAST(epoch(m.ts) AS BIGINT) // 3600 AS h,
           s.from_h,
           m.price, m.market_cap, m.total_volume AS volume
    FROM market_data m
    JOIN scope s ON m.coin_id = s.coin_id AND m.vs_currency = s.vs_currency
    WHERE m.ts >= to_timestamp(s.read_from_h * 3600)
),
level1 AS (
    SELECT coin_id, vs_currency, ts, h, from_h, price, volume,
        max(price) OVER lag1 AS price_lag_1h,   max(price) OVER lag3 AS price_lag_3h,
        max(price) OVER lag6 AS price_lag_6h,   max(price) OVER lag12 AS price_lag_12h,
        max(price) OVER lag24 AS price_lag_24h,
        max(volume) OVER lag1 AS volume_lag_1h, max(volume) OVER lag3 AS volume_lag_3h,
        max(volume) OVER lag6 AS volume_lag_6h, max(volume) OVER lag12 AS volume_lag_12h,
        max(volume) OVER lag24 AS volume_lag_24h,
        max(market_cap) OVER lag1 AS market_cap_lag_1h,   max(market_cap) OVER lag3 AS market_cap_lag_3h,
        max(market_cap) OVER lag6 AS market_cap_lag_6h,   max(market_cap) OVER lag12 AS market_cap_lag_12h,
        max(market_cap) OVER lag24 AS market_cap_lag_24h,
        count(*) OVER w3 AS n3, count(*) OVER w6 AS n6, count(*) OVER w12 AS n12, count(*) OVER w24 AS n24,
        count(volume) OVER w3 AS nv3, count(volume) OVER w6 AS nv6,
        count(volume) OVER w12 AS nv12, count(volume) OVER w24 AS nv24,
        avg(price) OVER w3 AS mean3, stddev_samp(price) OVER w3 AS std3, min(price) OVER w3 AS min3, max(price) OVER w3 AS max3,
        avg(price) OVER w6 AS mean6, stddev_samp(price) OVER w6 AS std6, min(price) OVER w6 AS min6, max(price) OVER w6 AS max6,
        avg(price) OVER w12 AS mean12, stddev_samp(price) OVER w12 AS std12, min(price) OVER w12 AS min12, max(price) OVER w12 AS max12,
        avg(price) OVER w24 AS mean24, stddev_samp(price) OVER w24 AS std24, min(price) OVER w24 AS min24, max(price) OVER w24 AS max24,
        avg(volume) OVER w3 AS vmean3, avg(volume) OVER w6 AS vmean6,
        avg(volume) OVER w12 AS vmean12, avg(volume) OVER w24 AS vmean24,
        corr(price, volume) OVER w24 AS corr24
    FROM base
    WINDOW
        lag1  AS (PARTITION BY coin_id, vs_currency ORDER BY h RANGE BETWEEN 1 PRECEDING AND 1 PRECEDING),
        lag3  AS (PARTITION BY coin_id, vs_currency ORDER BY h RANGE BETWEEN 3 PRECEDING AND 3 PRECEDING),
        lag6  AS (PARTITION BY coin_id, vs_currency ORDER BY h RANGE BETWEEN 6 PRECEDING AND 6 PRECEDING),
        lag12 AS (PARTITION BY coin_id, vs_currency ORDER BY h RANGE BETWEEN 12 PRECEDING AND 12 PRECEDING),
        lag24 AS (PARTITION BY coin_id, vs_currency ORDER BY h RANGE BETWEEN 24 PRECEDING AND 24 PRECEDING),
        w3  AS (PARTITION BY coin_id, vs_currency ORDER BY h RANGE BETWEEN 2 PRECEDING AND CURRENT ROW),
        w6  AS (PARTITION BY coin_id, vs_currency ORDER BY h RANGE BETWEEN 5 PRECEDING AND CURRENT ROW),
        w12 AS (PARTITION BY coin_id, vs_currency ORDER BY h RANGE BETWEEN 11 PRECEDING AND CURRENT ROW),
        w24 AS (PARTITION BY coin_id, vs_currency ORDER BY h RANGE BETWEEN 23 PRECEDING AND CURRENT ROW)
),
level2 AS (
    SELECT *,
        price / price_lag_1h - 1 AS price_change_1h,
        CASE WHEN n3 = 3 THEN mean3 END AS sma3,
        CASE WHEN n6 = 6 THEN mean6 END AS sma6,
        CASE WHEN n12 = 12 THEN mean12 END AS sma12,
        CASE WHEN n24 = 24 THEN mean24 END AS sma24,
        CASE WHEN n12 = 12 THEN std12 END AS sd12,
        CASE WHEN n24 = 24 THEN min24 END AS lo24,
        CASE WHEN n24 = 24 THEN max24 END AS hi24
    FROM level1
),
level3 AS (
    SELECT *,
        CASE WHEN count(price_change_1h) OVER w6 = 6 THEN stddev_samp(price_change_1h) OVER w6 END AS volatility_6h,
        CASE WHEN count(price_change_1h) OVER w12 = 12 THEN stddev_samp(price_change_1h) OVER w12 END AS volatility_12h,
        CASE WHEN count(price_change_1h) OVER w24 = 24 THEN stddev_samp(price_change_1h) OVER w24 END AS volatility_24h
    FROM level2
    WINDOW
        w6  AS (PARTITION BY coin_id, vs_currency ORDER BY h RANGE BETWEEN 5 PRECEDING AND CURRENT ROW),
        w12 AS (PARTITION BY coin_id, vs_currency ORDER BY h RANGE BETWEEN 11 PRECEDING AND CURRENT ROW),
        w24 AS (PARTITION BY coin_id, vs_currency ORDER BY h RANGE BETWEEN 23 PRECEDING AND CURRENT ROW)
),
ema_rows AS (
    SELECT b.coin_id, b.vs_currency, b.h, b.price, (b.h // 480) * 480 + k.shift AS anchor
    FROM base b CROSS JOIN (VALUES (0), (480)) AS k(shift)
),
ema AS (
    SELECT coin_id, vs_currency, h,
        sum(price * pow(5.0 / 7.0, anchor - h)) OVER e / sum(pow(5.0 / 7.0, anchor - h)) OVER e AS ema_6h,
        sum(price * pow(11.0 / 13.0, anchor - h)) OVER e / sum(pow(11.0 / 13.0, anchor - h)) OVER e AS ema_12h,
        sum(price * pow(23.0 / 25.0, anchor - h)) OVER e / sum(pow(23.0 / 25.0, anchor - h)) OVER e AS ema_24h
    FROM ema_rows
    WINDOW e AS (PARTITION BY coin_id, vs_currency, anchor ORDER BY h RANGE BETWEEN 479 PRECEDING AND CURRENT ROW)
    QUALIFY (h // 480) * 480 = anchor
)
SELECT
    f.coin_id, f.vs_currency, f.ts,
    hour(f.ts AT TIME ZONE 'UTC') AS hour,
    isodow(f.ts AT TIME ZONE 'UTC') - 1 AS day_of_week,
    day(f.ts AT TIME ZONE 'UTC') AS day,
    month(f.ts AT TIME ZONE 'UTC') AS month,
    sin(2 * pi() * hour(f.ts AT TIME ZONE 'UTC') / 24) AS hour_sin,
    cos(2 * pi() * hour(f.ts AT TIME ZONE 'UTC') / 24) AS hour_cos,
    sin(2 * pi() * (isodow(f.ts AT TIME ZONE 'UTC') - 1) / 7) AS day_sin,
    cos(2 * pi() * (isodow(f.ts AT TIME ZONE 'UTC') - 1) / 7) AS day_cos,
    sin(2 * pi() * month(f.ts AT TIME ZONE 'UTC') / 12) AS month_sin,
    cos(2 * pi() * month(f.ts AT TIME ZONE 'UTC') / 12) AS month_cos,
    f.price_lag_1h, f.price_lag_3h, f.price_lag_6h, f.price_lag_12h, f.price_lag_24h,
    f.volume_lag_1h, f.volume_lag_3h, f.volume_lag_6h, f.volume_lag_12h, f.volume_lag_24h,
    f.market_cap_lag_1h, f.market_cap_lag_3h, f.market_cap_lag_6h, f.market_cap_lag_12h, f.market_cap_lag_24h,
    f.sma3 AS price_rolling_mean_3h, CASE WHEN f.n3 = 3 THEN f.std3 END AS price_rolling_std_3h,
    CASE WHEN f.n3 = 3 THEN f.min3 END AS price_rolling_min_3h, CASE WHEN f.n3 = 3 THEN f.max3 END AS price_rolling_max_3h,
    f.sma6 AS price_rolling_mean_6h, CASE WHEN f.n6 = 6 THEN f.std6 END AS price_rolling_std_6h,
    CASE WHEN f.n6 = 6 THEN f.min6 END AS price_rolling_min_6h, CASE WHEN f.n6 = 6 THEN f.max6 END AS price_rolling_max_6h,
    f.sma12 AS price_rolling_mean_12h, f.sd12 AS price_rolling_std_12h,
    CASE WHEN f.n12 = 12 THEN f.min12 END AS price_rolling_min_12h, CASE WHEN f.n12 = 12 THEN f.max12 END AS price_rolling_max_12h,
    f.sma24 AS price_rolling_mean_24h, CASE WHEN f.n24 = 24 THEN f.std24 END AS price_rolling_std_24h,
    f.lo24 AS price_rolling_min_24h, f.hi24 AS price_rolling_max_24h,
    CASE WHEN f.nv3 = 3 THEN f.vmean3 END AS volume_rolling_mean_3h,
    CASE WHEN f.nv6 = 6 THEN f.vmean6 END AS volume_rolling_mean_6h,
    CASE WHEN f.nv12 = 12 THEN f.vmean12 END AS volume_rolling_mean_12h,
    CASE WHEN f.nv24 = 24 THEN f.vmean24 END AS volume_rolling_mean_24h,
    f.price_change_1h,
    f.price / f.price_lag_3h - 1 AS price_change_3h,
    f.price / f.price_lag_6h - 1 AS price_change_6h,
    f.price / f.price_lag_12h - 1 AS price_change_12h,
    f.price / f.price_lag_24h - 1 AS price_change_24h,
    ln(f.price / f.price_lag_1h) AS log_return_1h,
    f.price - f.price_lag_3h AS momentum_3h,
    f.price - f.price_lag_6h AS momentum_6h,
    f.price - f.price_lag_12h AS momentum_12h,
    f.volatility_6h, f.volatility_12h, f.volatility_24h,
    f.volume / f.price AS volume_price_ratio,
    f.volume / nullif(f.volume_lag_1h, 0) - 1 AS volume_change_1h,
    f.volume / nullif(f.volume_lag_6h, 0) - 1 AS volume_change_6h,
    f.volume / nullif(f.volume_lag_24h, 0) - 1 AS volume_change_24h,
    CASE WHEN f.n24 = 24 AND f.nv24 = 24 AND isfinite(f.corr24) THEN f.corr24 END AS price_volume_corr_24h,
    f.sma6 AS sma_6h, f.sma12 AS sma_12h, f.sma24 AS sma_24h,
    e.ema_6h, e.ema_12h, e.ema_24h,
    f.sma12 AS bb_middle,
    f.sma12 + 2 * f.sd12 AS bb_upper,
    f.sma12 - 2 * f.sd12 AS bb_lower,
    (4 * f.sd12) / nullif(f.sma12, 0) AS bb_width,
    (f.price - (f.sma12 - 2 * f.sd12)) / nullif(4 * f.sd12, 0) AS price_bb_position,
    (f.price - f.lo24) / nullif(f.hi24 - f.lo24, 0) AS price_position_24h
FROM level3 f
JOIN ema e ON e.coin_id = f.coin_id AND e.vs_currency = f.vs_currency AND e.h = f.h
WHERE f.h >= f.from_h
