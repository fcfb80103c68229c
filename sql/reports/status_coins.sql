-- Per coin: hours stored, span, gaps (runs of missing hours) and missing hours, feature rows.
WITH m AS (
    SELECT coin_id, vs_currency, ts,
           epoch(ts) - epoch(lag(ts) OVER (PARTITION BY coin_id, vs_currency ORDER BY ts)) AS step_s
    FROM market_data
),
f AS (
    SELECT coin_id, vs_currency, count(*) AS feature_rows FROM features GROUP BY ALL
)
SELECT m.coin_id, m.vs_currency, count(*) AS hours,
       strftime(min(m.ts) AT TIME ZONE 'UTC', '%Y-%m-%d %H:%M') AS first_hour,
       strftime(max(m.ts) AT TIME ZONE 'UTC', '%Y-%m-%d %H:%M') AS last_hour,
       count(*) FILTER (WHERE m.step_s > 3600) AS gaps,
       CAST(coalesce(sum(m.step_s / 3600 - 1) FILTER (WHERE m.step_s > 3600), 0) AS BIGINT) AS missing_hours,
       coalesce(any_value(f.feature_rows), 0) AS feature_rows
FROM m LEFT JOIN f USING (coin_id, vs_currency)
GROUP BY m.coin_id, m.vs_currency
ORDER BY m.coin_id, m.vs_currency
