-- Every feature of design.md for the hours in feature_scope, as window functions over market_data.
--
-- Input: TEMP TABLE feature_scope(coin_id, vs_currency, from_h BIGINT): for each coin, recompute the
-- hours h >= from_h, where h = hours since 1970-01-01 UTC. Output: rows shaped like `features`.
--
-- Semantics (pandas on a gap-free hourly series, stricter across gaps):
-- * A lag k is the value at h - k, a window w covers hours [h-w+1, h]. The rows are first laid on a
--   dense hourly grid (a NULL row for each missing hour), so that row offsets are hour offsets:
--   lag() and ROWS frames then mean hours, and a missing hour gives NULL instead of silently
--   reaching further back as pandas' row-based shift does. (Dense grid + lag/ROWS is 7x faster
--   than RANGE frames over the sparse rows.)
-- * Rolling statistics need all w values (pandas min_periods = w); std is the sample std (ddof = 1).
-- * ema_s = pandas ewm(span=s, adjust=True, ignore_na=False).mean() on the hourly series:
--   sum_j d^(h-j) x_j / sum_j d^(h-j), d = 1 - 2/(s+1), over the present hours j <= h. Hours are
--   cut into 480-hour blocks b; an hour sums its own block so far (a cumulative window, with
--   weights d^(b-j) relative to the block start, at most (7/5)^479 < 1e71) plus the previous
--   block's decayed sums carried in with one more factor d (the d^(h-b) scale cancels between
--   numerator and denominator). Older hours weigh less than 0.92^480 < 1e-17 and are dropped,
--   which makes an incremental rebuild equal to a full one.
-- * Ratios whose denominator is 0 are NULL (pandas gives inf or NaN there).
-- * Volatility that forecasts can lean on: realized volatility (the root mean square of the hourly
--   log returns) over 6, 24 and 168 hours, and its seasonality: the same over the same hour of the
--   day on the last 30 days, and over the same hour of the week on the last 8 weeks (each needs
--   every one of its returns). The longest reaches 1,344 hours back, so an incremental build reads
--   from three 480-hour blocks before the first rewritten one.
-- * No lookahead: every frame ends at the current row.
WITH scope AS (
    SELECT coin_id, vs_currency, from_h,
           (from_h // 480) * 480 - 1440 AS read_from_h
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
bounds AS (
    SELECT coin_id, vs_currency, min(h) AS lo, max(h) AS hi FROM base GROUP BY coin_id, vs_currency
),
grid AS (
    -- every hour from a coin's first to its last row; missing hours have NULL values
    SELECT g.coin_id, g.vs_currency, g.h, b.ts, b.from_h, b.price, b.market_cap, b.volume
    FROM (SELECT coin_id, vs_currency, unnest(range(lo, hi + 1)) AS h FROM bounds) g
    LEFT JOIN base b ON b.coin_id = g.coin_id AND b.vs_currency = g.vs_currency AND b.h = g.h
),
changes AS (
    -- the 1-hour change in a narrow pass, so that its rolling std joins the one wide window pass
    SELECT *, price / lag(price) OVER (PARTITION BY coin_id, vs_currency ORDER BY h) - 1 AS change_1h,
           ln(price / lag(price) OVER (PARTITION BY coin_id, vs_currency ORDER BY h)) ** 2 AS lr2
    FROM grid
),
seasonal_frames AS (
    -- the same hour of the day (of the week) on consecutive days (weeks) are consecutive rows of
    -- a partition by h % 24 (h % 168) on the dense grid. The frames are collected as lists and
    -- averaged in order: a windowed avg() over these partitions sums in an order that depends on
    -- where the partition lies among the others, so its last bits would change with later rows.
    SELECT coin_id, vs_currency, h,
        list(lr2) OVER d30 AS day30,
        list(lr2) OVER w8 AS week8
    FROM changes
    WINDOW
        d30 AS (PARTITION BY coin_id, vs_currency, h % 24 ORDER BY h ROWS BETWEEN 29 PRECEDING AND CURRENT ROW),
        w8  AS (PARTITION BY coin_id, vs_currency, h % 168 ORDER BY h ROWS BETWEEN 7 PRECEDING AND CURRENT ROW)
),
seasonal AS (
    SELECT coin_id, vs_currency, h,
        CASE WHEN list_count(day30) = 30 THEN sqrt(list_avg(day30)) END AS seasonal_vol_hour_30d,
        CASE WHEN list_count(week8) = 8 THEN sqrt(list_avg(week8)) END AS seasonal_vol_week_8w
    FROM seasonal_frames
),
level1 AS (
    SELECT coin_id, vs_currency, ts, h, from_h, price, volume, change_1h AS price_change_1h,
        CASE WHEN count(change_1h) OVER w6 = 6 THEN stddev_samp(change_1h) OVER w6 END AS volatility_6h,
        CASE WHEN count(change_1h) OVER w12 = 12 THEN stddev_samp(change_1h) OVER w12 END AS volatility_12h,
        CASE WHEN count(change_1h) OVER w24 = 24 THEN stddev_samp(change_1h) OVER w24 END AS volatility_24h,
        CASE WHEN count(lr2) OVER w6 = 6 THEN sqrt(avg(lr2) OVER w6) END AS realized_vol_6h,
        CASE WHEN count(lr2) OVER w24 = 24 THEN sqrt(avg(lr2) OVER w24) END AS realized_vol_24h,
        CASE WHEN count(lr2) OVER w168 = 168 THEN sqrt(avg(lr2) OVER w168) END AS realized_vol_168h,
        lag(price, 1) OVER g AS price_lag_1h, lag(price, 3) OVER g AS price_lag_3h,
        lag(price, 6) OVER g AS price_lag_6h, lag(price, 12) OVER g AS price_lag_12h,
        lag(price, 24) OVER g AS price_lag_24h, lag(volume, 1) OVER g AS volume_lag_1h,
        lag(volume, 3) OVER g AS volume_lag_3h, lag(volume, 6) OVER g AS volume_lag_6h,
        lag(volume, 12) OVER g AS volume_lag_12h, lag(volume, 24) OVER g AS volume_lag_24h,
        lag(market_cap, 1) OVER g AS market_cap_lag_1h, lag(market_cap, 3) OVER g AS market_cap_lag_3h,
        lag(market_cap, 6) OVER g AS market_cap_lag_6h, lag(market_cap, 12) OVER g AS market_cap_lag_12h,
        lag(market_cap, 24) OVER g AS market_cap_lag_24h,
        count(price) OVER w3 AS n3, count(price) OVER w6 AS n6, count(price) OVER w12 AS n12, count(price) OVER w24 AS n24,
        count(volume) OVER w3 AS nv3, count(volume) OVER w6 AS nv6,
        count(volume) OVER w12 AS nv12, count(volume) OVER w24 AS nv24,
        avg(price) OVER w3 AS mean3, stddev_samp(price) OVER w3 AS std3, min(price) OVER w3 AS min3, max(price) OVER w3 AS max3,
        avg(price) OVER w6 AS mean6, stddev_samp(price) OVER w6 AS std6, min(price) OVER w6 AS min6, max(price) OVER w6 AS max6,
        avg(price) OVER w12 AS mean12, stddev_samp(price) OVER w12 AS std12, min(price) OVER w12 AS min12, max(price) OVER w12 AS max12,
        avg(price) OVER w24 AS mean24, stddev_samp(price) OVER w24 AS std24, min(price) OVER w24 AS min24, max(price) OVER w24 AS max24,
        avg(volume) OVER w3 AS vmean3, avg(volume) OVER w6 AS vmean6,
        avg(volume) OVER w12 AS vmean12, avg(volume) OVER w24 AS vmean24,
        corr(price, volume) OVER w24 AS corr24
    FROM changes
    WINDOW
        g   AS (PARTITION BY coin_id, vs_currency ORDER BY h),
        w3  AS (PARTITION BY coin_id, vs_currency ORDER BY h ROWS BETWEEN 2 PRECEDING AND CURRENT ROW),
        w6  AS (PARTITION BY coin_id, vs_currency ORDER BY h ROWS BETWEEN 5 PRECEDING AND CURRENT ROW),
        w12 AS (PARTITION BY coin_id, vs_currency ORDER BY h ROWS BETWEEN 11 PRECEDING AND CURRENT ROW),
        w24 AS (PARTITION BY coin_id, vs_currency ORDER BY h ROWS BETWEEN 23 PRECEDING AND CURRENT ROW),
        w168 AS (PARTITION BY coin_id, vs_currency ORDER BY h ROWS BETWEEN 167 PRECEDING AND CURRENT ROW)
),
level2 AS (
    SELECT *,
        CAST(h % 24 AS INTEGER) AS hour,
        CAST((h // 24 + 3) % 7 AS INTEGER) AS day_of_week,     -- 1970-01-01 was a Thursday; Monday = 0
        day(epoch_ms(h * 3600000)) AS day,                      -- epoch_ms gives a UTC TIMESTAMP
        month(epoch_ms(h * 3600000)) AS month,
        CASE WHEN n3 = 3 THEN mean3 END AS sma3,
        CASE WHEN n6 = 6 THEN mean6 END AS sma6,
        CASE WHEN n12 = 12 THEN mean12 END AS sma12,
        CASE WHEN n24 = 24 THEN mean24 END AS sma24,
        CASE WHEN n12 = 12 THEN std12 END AS sd12,
        CASE WHEN n24 = 24 THEN min24 END AS lo24,
        CASE WHEN n24 = 24 THEN max24 END AS hi24
    FROM level1
),
ema_base AS (
    SELECT coin_id, vs_currency, h, h // 480 AS blk, price FROM base
),
ema_blocks AS (
    -- per 480-hour block: its decayed sums as of the block's last hour, carried into the next block
    SELECT coin_id, vs_currency, blk,
        sum(price * pow(5.0 / 7.0, blk * 480 + 479 - h)) AS num6, sum(pow(5.0 / 7.0, blk * 480 + 479 - h)) AS den6,
        sum(price * pow(11.0 / 13.0, blk * 480 + 479 - h)) AS num12, sum(pow(11.0 / 13.0, blk * 480 + 479 - h)) AS den12,
        sum(price * pow(23.0 / 25.0, blk * 480 + 479 - h)) AS num24, sum(pow(23.0 / 25.0, blk * 480 + 479 - h)) AS den24
    FROM ema_base
    GROUP BY coin_id, vs_currency, blk
),
ema AS (
    SELECT b.coin_id, b.vs_currency, b.h,
        (sum(b.price * pow(5.0 / 7.0, b.blk * 480 - b.h)) OVER cum + 5.0 / 7.0 * coalesce(p.num6, 0))
            / (sum(pow(5.0 / 7.0, b.blk * 480 - b.h)) OVER cum + 5.0 / 7.0 * coalesce(p.den6, 0)) AS ema_6h,
        (sum(b.price * pow(11.0 / 13.0, b.blk * 480 - b.h)) OVER cum + 11.0 / 13.0 * coalesce(p.num12, 0))
            / (sum(pow(11.0 / 13.0, b.blk * 480 - b.h)) OVER cum + 11.0 / 13.0 * coalesce(p.den12, 0)) AS ema_12h,
        (sum(b.price * pow(23.0 / 25.0, b.blk * 480 - b.h)) OVER cum + 23.0 / 25.0 * coalesce(p.num24, 0))
            / (sum(pow(23.0 / 25.0, b.blk * 480 - b.h)) OVER cum + 23.0 / 25.0 * coalesce(p.den24, 0)) AS ema_24h
    FROM ema_base b
    LEFT JOIN ema_blocks p ON p.coin_id = b.coin_id AND p.vs_currency = b.vs_currency AND p.blk = b.blk - 1
    WINDOW cum AS (PARTITION BY b.coin_id, b.vs_currency, b.blk ORDER BY b.h ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
)
SELECT
    f.coin_id, f.vs_currency, f.ts,
    f.hour, f.day_of_week, f.day, f.month,
    sin(2 * pi() * f.hour / 24) AS hour_sin,
    cos(2 * pi() * f.hour / 24) AS hour_cos,
    sin(2 * pi() * f.day_of_week / 7) AS day_sin,
    cos(2 * pi() * f.day_of_week / 7) AS day_cos,
    sin(2 * pi() * f.month / 12) AS month_sin,
    cos(2 * pi() * f.month / 12) AS month_cos,
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
    (f.price - f.lo24) / nullif(f.hi24 - f.lo24, 0) AS price_position_24h,
    f.realized_vol_6h, f.realized_vol_24h, f.realized_vol_168h,
    s.seasonal_vol_hour_30d, s.seasonal_vol_week_8w
FROM level2 f
JOIN ema e ON e.coin_id = f.coin_id AND e.vs_currency = f.vs_currency AND e.h = f.h
JOIN seasonal s ON s.coin_id = f.coin_id AND s.vs_currency = f.vs_currency AND s.h = f.h
WHERE f.price IS NOT NULL AND f.h >= f.from_h
