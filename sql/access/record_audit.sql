-- One audit event (src/access/audit.rs): who (the token's name, never the token), when, what,
-- how it ended and how long it took.
INSERT INTO audit_log (occurred_at, instance, token, channel, action, statement, outcome, duration_ms, client)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
