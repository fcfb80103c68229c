-- 20 equal-width bins of every feature over the same rows as the profile.
-- Parameters: coins (comma-separated), until (epoch seconds).
WITH long AS (
    UNPIVOT (
        SELECT COLUMNS(* EXCLUDE (coin_id, vs_currency, ts))::DOUBLE
        FROM features
        WHERE list_contains(string_split(?, ','), coin_id) AND ts <= to_timestamp(?)
    ) ON COLUMNS(*) INTO NAME feature VALUE v
),
finite AS (SELECT feature, v FROM long WHERE isfinite(v)),
ranges AS (SELECT feature, min(v) AS lo, max(v) AS hi FROM finite GROUP BY feature)
SELECT f.feature,
       coalesce(least(19, CAST(floor((f.v - r.lo) / nullif(r.hi - r.lo, 0) * 20) AS INTEGER)), 0) AS bin,
       count(*) AS n
FROM finite f JOIN ranges r USING (feature)
GROUP BY ALL
ORDER BY f.feature, bin
