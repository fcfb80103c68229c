-- Per token name: what it did over the whole trail (the /audit page).
SELECT token,
       count(*) AS events,
       count(*) FILTER (WHERE channel = 'postgres' OR action = 'sql') AS statements,
       count(*) FILTER (WHERE outcome NOT IN ('ok', '200', '201', '202')) AS refused_or_failed,
       strftime(max(occurred_at), '%Y-%m-%d %H:%M:%S') AS last_at
FROM audit_log
GROUP BY token
ORDER BY max(occurred_at) DESC
