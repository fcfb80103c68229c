-- Every feature of design.md for the hours in feature_scope, computed on a dense hourly grid.
--
-- Input: TEMP TABLE feature_scope(coin_id, vs_currency, from_h BIGINT): for each coin, recompute the
-- hours h >= from_h, where h = hours since 1970-01-01 UTC. Output: rows shaped like `features`.
--
-- Semantics (pandas on a gap-free hourly series, stricter across gaps):
-- * A lag k is the value at h - k, a window w covers hours [h-w+1, h]. The rows are first laid on a
--   dense hourly grid (a NULL row for each missing hour), so that row offsets are hour offsets and
--   a missing hour gives NULL instead of silently reaching further back as pandas' row-based shift
--   does.
-- * Rolling statistics need all w values (pandas min_periods = w); std is the sample std (ddof = 1).
-- * ema_s = pandas ewm(span=s, adjust=True, ignore_na=False).mean() on the hourly series:
--   sum_j d^(h-j) x_j / sum_j d^(h-j), d = 1 - 2/(s+1), over the present hours j <= h. Hours are
--   cut into 512-hour blocks; an hour sums its own block so far (a running sum with weights
--   (1/d)^(j - block start), at most (7/5)^511 < 1e75) plus the previous block's total carried in
--   with the factor d^512 (the scale d^(h - block start) cancels between numerator and
--   denominator). Older hours weigh less than 0.92^512 < 1e-18 and are dropped.
-- * Ratios whose denominator is 0 are NULL (pandas gives inf or NaN there).
-- * Volatility that forecasts can lean on: realized volatility (the root mean square of the hourly
--   log returns) over 6, 24 and 168 hours, and its seasonality: the same over the same hour of the
--   day on the last 30 days, and over the same hour of the week on the last 8 weeks (each needs
--   every one of its returns).
-- * No lookahead: every value at hour h is built from hours <= h.
--
-- How (measured on DuckDB 1.5.5, 5 coins, 189k rows; ARCHITECTURE.md, "Features"):
-- * A windowed aggregate (sum, avg, stddev over a frame) costs 20-30 ms per aggregate, and it sums
--   in the order of a segment tree whose nodes are counted from where the partition lies among the
--   others: its last bits depend on which coins and hours a build reads, so an incremental build did
--   not equal a full one (1-ulp differences in the 24-hour windows and the EMAs on real data).
-- * lag() is exact and costs 2-3 ms per column. So every rolling statistic is plain arithmetic over
--   lags in a fixed order, on a dense grid keyed by an integer coin key:
--   - sums over shared blocks of lags ([1,2], [3,5], [6,11], [12,23]): the 6-, 12- and 24-hour
--     windows reuse the shorter ones, and a NULL anywhere in a window makes its sum NULL (the
--     "all w values" rule, with no counts);
--   - variances from values shifted by the current one (d_k = x_k - x_0): no cancellation between
--     large sums, and exact zeros for equal prices;
--   - the 168-hour sum from seven 24-hour sums; the seasonal sums from lags 24 (168) hours apart.
-- * The EMA's running sums are the one windowed aggregate left (a lag-only EMA costs more). Their
--   partitions are whole 512-hour blocks (the grid is padded to block bounds), a multiple of the
--   segment tree's node sizes (16, 256), so every partition starts on a node boundary and sums in
--   the same order in every build. tests/it/features.rs checks incremental = full, bit for bit.
-- * An incremental build reads three blocks before the block of its first rewritten hour: the
--   longest reach is the 8-week seasonality's (1,177 hours with its return).
WITH scope AS (
    SELECT coin_id, vs_currency, from_h,
        (from_h // 512) * 512 - 1536 AS read_from_h,
        CAST(row_number() OVER (ORDER BY coin_id, vs_currency) AS INTEGER) AS ck
    FROM feature_scope
),
base AS (
    SELECT s.ck, CAST(epoch(m.ts) AS BIGINT) // 3600 AS h, m.ts,
        m.price, m.market_cap, m.total_volume AS volume,
        CAST(epoch(m.ts) AS BIGINT) // 3600 >= s.from_h AS rewrite
    FROM market_data m
    JOIN scope s ON m.coin_id = s.coin_id AND m.vs_currency = s.vs_currency
    WHERE m.ts >= to_timestamp(s.read_from_h * 3600)
),
grid AS (
    -- every hour of the 512-hour blocks that hold a coin's rows; missing hours have NULL values
    SELECT g.ck, g.h, b.ts, b.price, b.market_cap, b.volume, b.rewrite
    FROM (
        SELECT ck, unnest(range((min(h) // 512) * 512, (max(h) // 512 + 1) * 512)) AS h
        FROM base GROUP BY ck
    ) g
    LEFT JOIN base b ON b.ck = g.ck AND b.h = g.h
),
ema_weights AS (
    -- the in-block weights (1/d)^(h - block start), for present hours only
    SELECT ck, h, price,
        CASE WHEN price IS NOT NULL THEN pow(7.0 / 5.0, h % 512) END AS w6,
        CASE WHEN price IS NOT NULL THEN pow(13.0 / 11.0, h % 512) END AS w12,
        CASE WHEN price IS NOT NULL THEN pow(25.0 / 23.0, h % 512) END AS w24
    FROM grid
),
ema_cumulative AS (
    SELECT ck, h,
        sum(price * w6) OVER blk AS num6, sum(w6) OVER blk AS den6,
        sum(price * w12) OVER blk AS num12, sum(w12) OVER blk AS den12,
        sum(price * w24) OVER blk AS num24, sum(w24) OVER blk AS den24
    FROM ema_weights
    WINDOW blk AS (
        PARTITION BY ck, h // 512 ORDER BY h ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
    )
),
ema AS (
    -- the previous block's sums at its last hour, carried in with the factor d^512
    SELECT c.ck, c.h,
        (c.num6 + pow(5.0 / 7.0, 512) * coalesce(t.num6, 0))
            / (c.den6 + pow(5.0 / 7.0, 512) * coalesce(t.den6, 0)) AS ema_6h,
        (c.num12 + pow(11.0 / 13.0, 512) * coalesce(t.num12, 0))
            / (c.den12 + pow(11.0 / 13.0, 512) * coalesce(t.den12, 0)) AS ema_12h,
        (c.num24 + pow(23.0 / 25.0, 512) * coalesce(t.num24, 0))
            / (c.den24 + pow(23.0 / 25.0, 512) * coalesce(t.den24, 0)) AS ema_24h
    FROM ema_cumulative c
    LEFT JOIN ema_cumulative t ON t.ck = c.ck AND t.h = c.h - c.h % 512 - 1
),
returns AS (
    SELECT g.*, e.ema_6h, e.ema_12h, e.ema_24h,
        ln(g.price / lag(g.price) OVER (PARTITION BY g.ck ORDER BY g.h)) ** 2 AS lr2
    FROM grid g
    JOIN ema e ON e.ck = g.ck AND e.h = g.h
),
return_lags AS (
    -- r_k = lr2 at h - k: the last 24 hours, the same hour on 29 earlier days and 7 earlier weeks
    SELECT *,
        lag(lr2, 1) OVER g AS r1, lag(lr2, 2) OVER g AS r2, lag(lr2, 3) OVER g AS r3,
        lag(lr2, 4) OVER g AS r4, lag(lr2, 5) OVER g AS r5, lag(lr2, 6) OVER g AS r6,
        lag(lr2, 7) OVER g AS r7, lag(lr2, 8) OVER g AS r8, lag(lr2, 9) OVER g AS r9,
        lag(lr2, 10) OVER g AS r10, lag(lr2, 11) OVER g AS r11, lag(lr2, 12) OVER g AS r12,
        lag(lr2, 13) OVER g AS r13, lag(lr2, 14) OVER g AS r14, lag(lr2, 15) OVER g AS r15,
        lag(lr2, 16) OVER g AS r16, lag(lr2, 17) OVER g AS r17, lag(lr2, 18) OVER g AS r18,
        lag(lr2, 19) OVER g AS r19, lag(lr2, 20) OVER g AS r20, lag(lr2, 21) OVER g AS r21,
        lag(lr2, 22) OVER g AS r22, lag(lr2, 23) OVER g AS r23, lag(lr2, 24) OVER g AS r24,
        lag(lr2, 48) OVER g AS r48, lag(lr2, 72) OVER g AS r72, lag(lr2, 96) OVER g AS r96,
        lag(lr2, 120) OVER g AS r120, lag(lr2, 144) OVER g AS r144, lag(lr2, 168) OVER g AS r168,
        lag(lr2, 192) OVER g AS r192, lag(lr2, 216) OVER g AS r216, lag(lr2, 240) OVER g AS r240,
        lag(lr2, 264) OVER g AS r264, lag(lr2, 288) OVER g AS r288, lag(lr2, 312) OVER g AS r312,
        lag(lr2, 336) OVER g AS r336, lag(lr2, 360) OVER g AS r360, lag(lr2, 384) OVER g AS r384,
        lag(lr2, 408) OVER g AS r408, lag(lr2, 432) OVER g AS r432, lag(lr2, 456) OVER g AS r456,
        lag(lr2, 480) OVER g AS r480, lag(lr2, 504) OVER g AS r504, lag(lr2, 528) OVER g AS r528,
        lag(lr2, 552) OVER g AS r552, lag(lr2, 576) OVER g AS r576, lag(lr2, 600) OVER g AS r600,
        lag(lr2, 624) OVER g AS r624, lag(lr2, 648) OVER g AS r648, lag(lr2, 672) OVER g AS r672,
        lag(lr2, 696) OVER g AS r696, lag(lr2, 840) OVER g AS r840, lag(lr2, 1008) OVER g AS r1008,
        lag(lr2, 1176) OVER g AS r1176
    FROM returns
    WINDOW g AS (PARTITION BY ck ORDER BY h)
),
return_sums AS (
    SELECT ck, h, ts, price, market_cap, volume, rewrite, ema_6h, ema_12h, ema_24h,
        lr2 + r1 + r2 + r3 + r4 + r5 AS rs6,
        r6 + r7 + r8 + r9 + r10 + r11 + r12 + r13 + r14 + r15 + r16 + r17 + r18 + r19 + r20
            + r21 + r22 + r23 AS rs6_24,
        lr2 + r24 + r48 + r72 + r96 + r120 + r144 + r168 + r192 + r216 + r240 + r264 + r288
            + r312 + r336 + r360 + r384 + r408 + r432 + r456 + r480 + r504 + r528 + r552 + r576
            + r600 + r624 + r648 + r672 + r696 AS rs_day30,
        lr2 + r168 + r336 + r504 + r672 + r840 + r1008 + r1176 AS rs_week8
    FROM return_lags
),
return_sums24 AS (
    SELECT * EXCLUDE (rs6_24), rs6 + rs6_24 AS rs24 FROM return_sums
),
value_lags AS (
    -- p_k, v_k, m_k: price, volume and market cap at h - k; rs24_k: the 24-hour return sum at h - k
    SELECT *,
        lag(price, 1) OVER g AS p1, lag(price, 2) OVER g AS p2, lag(price, 3) OVER g AS p3,
        lag(price, 4) OVER g AS p4, lag(price, 5) OVER g AS p5, lag(price, 6) OVER g AS p6,
        lag(price, 7) OVER g AS p7, lag(price, 8) OVER g AS p8, lag(price, 9) OVER g AS p9,
        lag(price, 10) OVER g AS p10, lag(price, 11) OVER g AS p11, lag(price, 12) OVER g AS p12,
        lag(price, 13) OVER g AS p13, lag(price, 14) OVER g AS p14, lag(price, 15) OVER g AS p15,
        lag(price, 16) OVER g AS p16, lag(price, 17) OVER g AS p17, lag(price, 18) OVER g AS p18,
        lag(price, 19) OVER g AS p19, lag(price, 20) OVER g AS p20, lag(price, 21) OVER g AS p21,
        lag(price, 22) OVER g AS p22, lag(price, 23) OVER g AS p23, lag(price, 24) OVER g AS p24,
        lag(volume, 1) OVER g AS v1, lag(volume, 2) OVER g AS v2, lag(volume, 3) OVER g AS v3,
        lag(volume, 4) OVER g AS v4, lag(volume, 5) OVER g AS v5, lag(volume, 6) OVER g AS v6,
        lag(volume, 7) OVER g AS v7, lag(volume, 8) OVER g AS v8, lag(volume, 9) OVER g AS v9,
        lag(volume, 10) OVER g AS v10, lag(volume, 11) OVER g AS v11, lag(volume, 12) OVER g AS v12,
        lag(volume, 13) OVER g AS v13, lag(volume, 14) OVER g AS v14, lag(volume, 15) OVER g AS v15,
        lag(volume, 16) OVER g AS v16, lag(volume, 17) OVER g AS v17, lag(volume, 18) OVER g AS v18,
        lag(volume, 19) OVER g AS v19, lag(volume, 20) OVER g AS v20, lag(volume, 21) OVER g AS v21,
        lag(volume, 22) OVER g AS v22, lag(volume, 23) OVER g AS v23, lag(volume, 24) OVER g AS v24,
        lag(market_cap, 1) OVER g AS m1, lag(market_cap, 3) OVER g AS m3,
        lag(market_cap, 6) OVER g AS m6, lag(market_cap, 12) OVER g AS m12,
        lag(market_cap, 24) OVER g AS m24, lag(rs24, 24) OVER g AS rs24_24,
        lag(rs24, 48) OVER g AS rs24_48, lag(rs24, 72) OVER g AS rs24_72,
        lag(rs24, 96) OVER g AS rs24_96, lag(rs24, 120) OVER g AS rs24_120,
        lag(rs24, 144) OVER g AS rs24_144
    FROM return_sums24
    WINDOW g AS (PARTITION BY ck ORDER BY h)
),
shifted AS (
    -- deviations from the current hour's value; c_k: the 1-hour change at h - k
    SELECT *,
        p1 - price AS dp1, p2 - price AS dp2, p3 - price AS dp3, p4 - price AS dp4,
        p5 - price AS dp5, p6 - price AS dp6, p7 - price AS dp7, p8 - price AS dp8,
        p9 - price AS dp9, p10 - price AS dp10, p11 - price AS dp11, p12 - price AS dp12,
        p13 - price AS dp13, p14 - price AS dp14, p15 - price AS dp15, p16 - price AS dp16,
        p17 - price AS dp17, p18 - price AS dp18, p19 - price AS dp19, p20 - price AS dp20,
        p21 - price AS dp21, p22 - price AS dp22, p23 - price AS dp23,
        v1 - volume AS dv1, v2 - volume AS dv2, v3 - volume AS dv3, v4 - volume AS dv4,
        v5 - volume AS dv5, v6 - volume AS dv6, v7 - volume AS dv7, v8 - volume AS dv8,
        v9 - volume AS dv9, v10 - volume AS dv10, v11 - volume AS dv11, v12 - volume AS dv12,
        v13 - volume AS dv13, v14 - volume AS dv14, v15 - volume AS dv15, v16 - volume AS dv16,
        v17 - volume AS dv17, v18 - volume AS dv18, v19 - volume AS dv19, v20 - volume AS dv20,
        v21 - volume AS dv21, v22 - volume AS dv22, v23 - volume AS dv23,
        price / p1 - 1 AS c0, p1 / p2 - 1 AS c1, p2 / p3 - 1 AS c2, p3 / p4 - 1 AS c3,
        p4 / p5 - 1 AS c4, p5 / p6 - 1 AS c5, p6 / p7 - 1 AS c6, p7 / p8 - 1 AS c7,
        p8 / p9 - 1 AS c8, p9 / p10 - 1 AS c9, p10 / p11 - 1 AS c10, p11 / p12 - 1 AS c11,
        p12 / p13 - 1 AS c12, p13 / p14 - 1 AS c13, p14 / p15 - 1 AS c14, p15 / p16 - 1 AS c15,
        p16 / p17 - 1 AS c16, p17 / p18 - 1 AS c17, p18 / p19 - 1 AS c18, p19 / p20 - 1 AS c19,
        p20 / p21 - 1 AS c20, p21 / p22 - 1 AS c21, p22 / p23 - 1 AS c22, p23 / p24 - 1 AS c23
    FROM value_lags
),
blocks AS (
    -- each statistic over the lag blocks [1,2], [3,5], [6,11], [12,23] (blocks 0-3)
    SELECT *,
        dp1 + dp2 AS bp0,
        dp3 + dp4 + dp5 AS bp1,
        dp6 + dp7 + dp8 + dp9 + dp10 + dp11 AS bp2,
        dp12 + dp13 + dp14 + dp15 + dp16 + dp17 + dp18 + dp19 + dp20 + dp21 + dp22 + dp23 AS bp3,
        dp1 * dp1 + dp2 * dp2 AS bq0,
        dp3 * dp3 + dp4 * dp4 + dp5 * dp5 AS bq1,
        dp6 * dp6 + dp7 * dp7 + dp8 * dp8 + dp9 * dp9 + dp10 * dp10 + dp11 * dp11 AS bq2,
        dp12 * dp12 + dp13 * dp13 + dp14 * dp14 + dp15 * dp15 + dp16 * dp16 + dp17 * dp17
            + dp18 * dp18 + dp19 * dp19 + dp20 * dp20 + dp21 * dp21 + dp22 * dp22 + dp23 * dp23 AS bq3,
        least(p1, p2) AS bmn0,
        least(p3, p4, p5) AS bmn1,
        least(p6, p7, p8, p9, p10, p11) AS bmn2,
        least(p12, p13, p14, p15, p16, p17, p18, p19, p20, p21, p22, p23) AS bmn3,
        greatest(p1, p2) AS bmx0,
        greatest(p3, p4, p5) AS bmx1,
        greatest(p6, p7, p8, p9, p10, p11) AS bmx2,
        greatest(p12, p13, p14, p15, p16, p17, p18, p19, p20, p21, p22, p23) AS bmx3,
        dv1 + dv2 AS bdv0,
        dv3 + dv4 + dv5 AS bdv1,
        dv6 + dv7 + dv8 + dv9 + dv10 + dv11 AS bdv2,
        dv12 + dv13 + dv14 + dv15 + dv16 + dv17 + dv18 + dv19 + dv20 + dv21 + dv22 + dv23 AS bdv3,
        dv1 * dv1 + dv2 * dv2 + dv3 * dv3 + dv4 * dv4 + dv5 * dv5 + dv6 * dv6 + dv7 * dv7
            + dv8 * dv8 + dv9 * dv9 + dv10 * dv10 + dv11 * dv11 + dv12 * dv12 + dv13 * dv13
            + dv14 * dv14 + dv15 * dv15 + dv16 * dv16 + dv17 * dv17 + dv18 * dv18 + dv19 * dv19
            + dv20 * dv20 + dv21 * dv21 + dv22 * dv22 + dv23 * dv23 AS bqv0,
        dp1 * dv1 + dp2 * dv2 + dp3 * dv3 + dp4 * dv4 + dp5 * dv5 + dp6 * dv6 + dp7 * dv7
            + dp8 * dv8 + dp9 * dv9 + dp10 * dv10 + dp11 * dv11 + dp12 * dv12 + dp13 * dv13
            + dp14 * dv14 + dp15 * dv15 + dp16 * dv16 + dp17 * dv17 + dp18 * dv18 + dp19 * dv19
            + dp20 * dv20 + dp21 * dv21 + dp22 * dv22 + dp23 * dv23 AS bpv0,
        c0 + c1 + c2 + c3 + c4 + c5 AS bc0,
        c6 + c7 + c8 + c9 + c10 + c11 AS bc1,
        c12 + c13 + c14 + c15 + c16 + c17 + c18 + c19 + c20 + c21 + c22 + c23 AS bc2,
        c0 * c0 + c1 * c1 + c2 * c2 + c3 * c3 + c4 * c4 + c5 * c5 AS bqc0,
        c6 * c6 + c7 * c7 + c8 * c8 + c9 * c9 + c10 * c10 + c11 * c11 AS bqc1,
        c12 * c12 + c13 * c13 + c14 * c14 + c15 * c15 + c16 * c16 + c17 * c17 + c18 * c18
            + c19 * c19 + c20 * c20 + c21 * c21 + c22 * c22 + c23 * c23 AS bqc2,
        rs24 + rs24_24 + rs24_48 + rs24_72 + rs24_96 + rs24_120 + rs24_144 AS rs168
    FROM shifted
),
windows AS (
    -- the 3-, 6-, 12- and 24-hour windows as unions of blocks; NULL unless every hour is present
    SELECT *,
        bp0 AS sp3, bq0 AS qp3, least(price, bmn0) AS min3, greatest(price, bmx0) AS max3,
        bdv0 AS sv3,
        bp0 + bp1 AS sp6, bq0 + bq1 AS qp6,
        least(price, bmn0, bmn1) AS min6, greatest(price, bmx0, bmx1) AS max6,
        bdv0 + bdv1 AS sv6,
        bp0 + bp1 + bp2 AS sp12, bq0 + bq1 + bq2 AS qp12,
        least(price, bmn0, bmn1, bmn2) AS min12, greatest(price, bmx0, bmx1, bmx2) AS max12,
        bdv0 + bdv1 + bdv2 AS sv12,
        bp0 + bp1 + bp2 + bp3 AS sp24, bq0 + bq1 + bq2 + bq3 AS qp24,
        least(price, bmn0, bmn1, bmn2, bmn3) AS min24, greatest(price, bmx0, bmx1, bmx2, bmx3) AS max24,
        bdv0 + bdv1 + bdv2 + bdv3 AS sv24,
        bc0 AS sc6, bqc0 AS qc6, bc0 + bc1 AS sc12, bqc0 + bqc1 AS qc12,
        bc0 + bc1 + bc2 AS sc24, bqc0 + bqc1 + bqc2 AS qc24
    FROM blocks
),
stats AS (
    SELECT ck, h, ts, price, volume, ema_6h, ema_12h, ema_24h, c0, p1, p3, p6, p12, p24,
        v1, v3, v6, v12, v24, m1, m3, m6, m12, m24, rs6, rs24, rs168, rs_day30, rs_week8,
        -- min and max are defined where the window's sum is (every hour present)
        CASE WHEN sp3 IS NOT NULL THEN min3 END AS min3, CASE WHEN sp3 IS NOT NULL THEN max3 END AS max3,
        CASE WHEN sp6 IS NOT NULL THEN min6 END AS min6, CASE WHEN sp6 IS NOT NULL THEN max6 END AS max6,
        CASE WHEN sp12 IS NOT NULL THEN min12 END AS min12, CASE WHEN sp12 IS NOT NULL THEN max12 END AS max12,
        CASE WHEN sp24 IS NOT NULL THEN min24 END AS min24, CASE WHEN sp24 IS NOT NULL THEN max24 END AS max24,
        price + sp3 / 3 AS mean3, price + sp6 / 6 AS mean6, price + sp12 / 12 AS mean12, price + sp24 / 24 AS mean24,
        volume + sv3 / 3 AS vmean3, volume + sv6 / 6 AS vmean6, volume + sv12 / 12 AS vmean12, volume + sv24 / 24 AS vmean24,
        -- sample variances and the covariance from the shifted sums
        (qp3 - sp3 * sp3 / 3) / 2 AS var3,
        (qp6 - sp6 * sp6 / 6) / 5 AS var6,
        (qp12 - sp12 * sp12 / 12) / 11 AS var12,
        (qp24 - sp24 * sp24 / 24) / 23 AS var24,
        (bqv0 - sv24 * sv24 / 24) / 23 AS volume_var24,
        (bpv0 - sp24 * sv24 / 24) / 23 AS cov24,
        (qc6 - sc6 * sc6 / 6) / 5 AS change_var6,
        (qc12 - sc12 * sc12 / 12) / 11 AS change_var12,
        (qc24 - sc24 * sc24 / 24) / 23 AS change_var24
    FROM windows
    WHERE rewrite AND price IS NOT NULL
),
clamped AS (
    -- rounding can leave a variance a few ulps below 0; NULL stays NULL
    SELECT * REPLACE (
        CASE WHEN var3 < 0 THEN 0 ELSE var3 END AS var3,
        CASE WHEN var6 < 0 THEN 0 ELSE var6 END AS var6,
        CASE WHEN var12 < 0 THEN 0 ELSE var12 END AS var12,
        CASE WHEN var24 < 0 THEN 0 ELSE var24 END AS var24,
        CASE WHEN volume_var24 < 0 THEN 0 ELSE volume_var24 END AS volume_var24,
        CASE WHEN change_var6 < 0 THEN 0 ELSE change_var6 END AS change_var6,
        CASE WHEN change_var12 < 0 THEN 0 ELSE change_var12 END AS change_var12,
        CASE WHEN change_var24 < 0 THEN 0 ELSE change_var24 END AS change_var24
    )
    FROM stats
)
SELECT
    -- the coin's names by its key, without a join that would copy every column
    (SELECT list(coin_id ORDER BY ck) FROM scope)[f.ck] AS coin_id,
    (SELECT list(vs_currency ORDER BY ck) FROM scope)[f.ck] AS vs_currency,
    f.ts,
    CAST(f.h % 24 AS INTEGER) AS hour,
    CAST((f.h // 24 + 3) % 7 AS INTEGER) AS day_of_week,     -- 1970-01-01 was a Thursday; Monday = 0
    day(epoch_ms(f.h * 3600000)) AS day,
    month(epoch_ms(f.h * 3600000)) AS month,
    sin(2 * pi() * (f.h % 24) / 24) AS hour_sin,
    cos(2 * pi() * (f.h % 24) / 24) AS hour_cos,
    sin(2 * pi() * ((f.h // 24 + 3) % 7) / 7) AS day_sin,
    cos(2 * pi() * ((f.h // 24 + 3) % 7) / 7) AS day_cos,
    sin(2 * pi() * month(epoch_ms(f.h * 3600000)) / 12) AS month_sin,
    cos(2 * pi() * month(epoch_ms(f.h * 3600000)) / 12) AS month_cos,
    f.p1 AS price_lag_1h, f.p3 AS price_lag_3h, f.p6 AS price_lag_6h, f.p12 AS price_lag_12h, f.p24 AS price_lag_24h,
    f.v1 AS volume_lag_1h, f.v3 AS volume_lag_3h, f.v6 AS volume_lag_6h, f.v12 AS volume_lag_12h, f.v24 AS volume_lag_24h,
    f.m1 AS market_cap_lag_1h, f.m3 AS market_cap_lag_3h, f.m6 AS market_cap_lag_6h,
    f.m12 AS market_cap_lag_12h, f.m24 AS market_cap_lag_24h,
    f.mean3 AS price_rolling_mean_3h, sqrt(f.var3) AS price_rolling_std_3h,
    f.min3 AS price_rolling_min_3h, f.max3 AS price_rolling_max_3h,
    f.mean6 AS price_rolling_mean_6h, sqrt(f.var6) AS price_rolling_std_6h,
    f.min6 AS price_rolling_min_6h, f.max6 AS price_rolling_max_6h,
    f.mean12 AS price_rolling_mean_12h, sqrt(f.var12) AS price_rolling_std_12h,
    f.min12 AS price_rolling_min_12h, f.max12 AS price_rolling_max_12h,
    f.mean24 AS price_rolling_mean_24h, sqrt(f.var24) AS price_rolling_std_24h,
    f.min24 AS price_rolling_min_24h, f.max24 AS price_rolling_max_24h,
    f.vmean3 AS volume_rolling_mean_3h, f.vmean6 AS volume_rolling_mean_6h,
    f.vmean12 AS volume_rolling_mean_12h, f.vmean24 AS volume_rolling_mean_24h,
    f.c0 AS price_change_1h,
    f.price / f.p3 - 1 AS price_change_3h,
    f.price / f.p6 - 1 AS price_change_6h,
    f.price / f.p12 - 1 AS price_change_12h,
    f.price / f.p24 - 1 AS price_change_24h,
    ln(f.price / f.p1) AS log_return_1h,
    f.price - f.p3 AS momentum_3h,
    f.price - f.p6 AS momentum_6h,
    f.price - f.p12 AS momentum_12h,
    sqrt(f.change_var6) AS volatility_6h, sqrt(f.change_var12) AS volatility_12h, sqrt(f.change_var24) AS volatility_24h,
    f.volume / f.price AS volume_price_ratio,
    f.volume / nullif(f.v1, 0) - 1 AS volume_change_1h,
    f.volume / nullif(f.v6, 0) - 1 AS volume_change_6h,
    f.volume / nullif(f.v24, 0) - 1 AS volume_change_24h,
    f.cov24 / nullif(sqrt(f.var24 * f.volume_var24), 0) AS price_volume_corr_24h,
    f.mean6 AS sma_6h, f.mean12 AS sma_12h, f.mean24 AS sma_24h,
    f.ema_6h, f.ema_12h, f.ema_24h,
    f.mean12 AS bb_middle,
    f.mean12 + 2 * sqrt(f.var12) AS bb_upper,
    f.mean12 - 2 * sqrt(f.var12) AS bb_lower,
    (4 * sqrt(f.var12)) / nullif(f.mean12, 0) AS bb_width,
    (f.price - (f.mean12 - 2 * sqrt(f.var12))) / nullif(4 * sqrt(f.var12), 0) AS price_bb_position,
    (f.price - f.min24) / nullif(f.max24 - f.min24, 0) AS price_position_24h,
    sqrt(f.rs6 / 6) AS realized_vol_6h, sqrt(f.rs24 / 24) AS realized_vol_24h, sqrt(f.rs168 / 168) AS realized_vol_168h,
    sqrt(f.rs_day30 / 30) AS seasonal_vol_hour_30d, sqrt(f.rs_week8 / 8) AS seasonal_vol_week_8w
FROM clamped f
