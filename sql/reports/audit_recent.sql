-- The audit trail's newest events (the /audit page), optionally of one token name ($1, NULL: all).
SELECT strftime(occurred_at, '%Y-%m-%d %H:%M:%S') AS occurred_at, instance, token, channel, action,
       coalesce(statement, '') AS statement, outcome, duration_ms, coalesce(client, '') AS client
FROM audit_log
WHERE $1 IS NULL OR token = $1
ORDER BY audit_log.occurred_at DESC
LIMIT $2
