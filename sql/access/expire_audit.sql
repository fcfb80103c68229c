-- Audit events older than retention.audit_days (the cutoff, $1): deleted by cleanup.
DELETE FROM audit_log WHERE occurred_at < $1
