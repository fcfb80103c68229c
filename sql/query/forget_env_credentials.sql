-- The lake's SQL sandbox with its data on S3, before the lock: httpfs copies AWS_ACCESS_KEY_ID,
-- AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN from the environment into settings that
-- current_setting() and duckdb_settings() show. The lake reads S3 through its own secret (shown
-- redacted), so these settings are emptied.
SET GLOBAL s3_access_key_id = '';
SET GLOBAL s3_secret_access_key = '';
SET GLOBAL s3_session_token = '';
