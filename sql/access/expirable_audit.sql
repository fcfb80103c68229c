-- Audit events older than retention.audit_days (the cutoff, $1): counted by a dry run.
SELECT count(*) FROM audit_log WHERE occurred_at < $1
