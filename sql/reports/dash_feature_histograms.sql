-- 20 equal-width bins of every feature over the same rows as the profile, between its finite
-- minimum and maximum. Parameters (twice): coins (comma-separated), until (epoch seconds).
-- The rows are scanned twice rather than kept: the ranges are one wide pass of aggregates, and
-- the long form streams through a join with the 79 ranges (a CTE read twice was materialized:
-- 15 million rows, 0.8 GB for 5 coins).
WITH ranges AS (
    UNPIVOT (
        SELECT {'lo': min(CASE WHEN isfinite(COLUMNS('(.*)')::DOUBLE) THEN COLUMNS('(.*)')::DOUBLE END),
                'hi': max(CASE WHEN isfinite(COLUMNS('(.*)')::DOUBLE) THEN COLUMNS('(.*)')::DOUBLE END)} AS '\1'
        FROM (
            SELECT COLUMNS(* EXCLUDE (coin_id, vs_currency, ts))
            FROM features
            WHERE list_contains(string_split(?, ','), coin_id) AND ts <= to_timestamp(?)
        )
    ) ON COLUMNS(*) INTO NAME feature VALUE r
), long AS (
    UNPIVOT (
        SELECT COLUMNS(* EXCLUDE (coin_id, vs_currency, ts))::DOUBLE
        FROM features
        WHERE list_contains(string_split(?, ','), coin_id) AND ts <= to_timestamp(?)
    ) ON COLUMNS(*) INTO NAME feature VALUE v
)
SELECT l.feature,
       coalesce(least(19, CAST(floor((l.v - g.r.lo) / nullif(g.r.hi - g.r.lo, 0) * 20) AS INTEGER)), 0) AS bin,
       count(*) AS n
FROM long l JOIN ranges g USING (feature)
WHERE isfinite(l.v)
GROUP BY ALL
ORDER BY l.feature, bin
