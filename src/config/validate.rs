//! The checks every loaded `Settings` passes: ranges, formats and combinations, each failure
//! naming its key (`ConfigError::Invalid`).

use super::{is_instance_name, is_valid_coin_id, ConfigError, Plan, Settings};

/// Empty, or a number and a unit DuckDB reads (`2GB`, `512 MiB`, `1.5GB`).
fn is_memory_size(text: &str) -> bool {
    let text = text.trim();
    if text.is_empty() {
        return true;
    }
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let units = ["B", "KB", "MB", "GB", "TB", "KIB", "MIB", "GIB", "TIB"];
    number.parse::<f64>().is_ok_and(|n| n > 0.0)
        && units.contains(&unit.trim().to_ascii_uppercase().as_str())
}

/// A timeout that must interrupt its work before the request around it times out.
fn below_request_timeout(
    key: &str,
    secs: u64,
    request_timeout_secs: u64,
    work: &str,
) -> Result<(), ConfigError> {
    if secs == 0 || secs >= request_timeout_secs {
        return Err(ConfigError::Invalid {
            key: key.to_string(),
            message: format!(
                "{secs} must be at least 1 and below serve.request_timeout_secs = {request_timeout_secs}, so that a slow {work} is interrupted before its request times out"
            ),
        });
    }
    Ok(())
}

impl Settings {
    fn validate_publish(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            key: key.to_string(),
            message,
        };
        let publish = &self.publish;
        if !(1..=300).contains(&publish.poll_secs) {
            return Err(invalid(
                "publish.poll_secs",
                format!("{} must be within 1..=300 seconds", publish.poll_secs),
            ));
        }
        if !(31..=3650).contains(&publish.series_days) {
            return Err(invalid(
                "publish.series_days",
                format!(
                    "{} must be within 31..=3650: a replica forecasts from hours that have 30 days of history before them",
                    publish.series_days
                ),
            ));
        }
        if publish.keep_versions < 2 {
            return Err(invalid(
                "publish.keep_versions",
                "at least 2: a replica may still be loading the one before the newest".into(),
            ));
        }
        let Some(url) = publish.url() else {
            return Ok(());
        };
        let local = url.strip_prefix("file://").filter(|p| p.starts_with('/'));
        if local.is_none() && !url.starts_with("s3://") {
            return Err(invalid(
                "publish.url",
                format!("`{url}` must be file:///absolute/dir or s3://bucket/prefix"),
            ));
        }
        let lake = self.lake.data_path.trim().trim_end_matches('/');
        if !lake.is_empty() && lake == url.trim_end_matches('/') {
            return Err(invalid(
                "publish.url",
                format!("`{url}` is lake.data_path: give the publication a prefix of its own, e.g. {lake}-serving"),
            ));
        }
        Ok(())
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            key: key.to_string(),
            message,
        };
        if self.coins.is_empty() {
            return Err(invalid("coins", "at least one coin id is needed".into()));
        }
        if !matches!(self.s3.url_style.as_str(), "path" | "vhost") {
            return Err(invalid(
                "s3.url_style",
                format!(
                    "`{}` is not a URL style: use path or vhost",
                    self.s3.url_style
                ),
            ));
        }
        let endpoint = self.s3.endpoint.trim();
        let endpoint_allowed = endpoint.is_empty()
            || endpoint.starts_with("https://")
            || (endpoint.starts_with("http://") && self.s3.allow_http);
        if !endpoint_allowed {
            return Err(invalid(
                "s3.endpoint",
                format!(
                    "`{endpoint}` must be an https:// URL (or http:// with s3.allow_http = true)"
                ),
            ));
        }
        if self.serve.tls_cert.trim().is_empty() != self.serve.tls_key.trim().is_empty() {
            return Err(invalid(
                "serve.tls_cert",
                "set serve.tls_cert and serve.tls_key together (PEM files), or neither".into(),
            ));
        }
        let request_timeout = self.serve.request_timeout_secs;
        below_request_timeout(
            "serve.sql_timeout_secs",
            self.serve.sql_timeout_secs,
            request_timeout,
            "query",
        )?;
        if self.retention.prediction_days < 7 {
            return Err(invalid(
                "retention.prediction_days",
                format!(
                    "{} must be at least 7: live accuracy over 7 days reads the raw rows",
                    self.retention.prediction_days
                ),
            ));
        }
        below_request_timeout(
            "serve.page_timeout_secs",
            self.serve.page_timeout_secs,
            request_timeout,
            "page",
        )?;
        let instance = self.serve.instance.trim();
        if !instance.is_empty() && !is_instance_name(instance) {
            return Err(invalid(
                "serve.instance",
                format!(
                    "`{instance}` must be 1-64 letters, digits, `.`, `_`, `:` or `-` (it is a response header and a column value)"
                ),
            ));
        }
        self.validate_publish()?;
        if !(1..=16).contains(&self.serve.page_connections) {
            return Err(invalid(
                "serve.page_connections",
                format!("{} must be within 1..=16", self.serve.page_connections),
            ));
        }
        if self.serve.sql_memory_limit.trim().is_empty()
            || !is_memory_size(&self.serve.sql_memory_limit)
        {
            return Err(invalid(
                "serve.sql_memory_limit",
                format!(
                    "`{}` is not a size like 1GB or 512MiB",
                    self.serve.sql_memory_limit
                ),
            ));
        }
        if let Some(bind) = self.serve.pg_bind() {
            match bind.parse::<std::net::SocketAddr>() {
                Err(_) => {
                    return Err(invalid(
                        "serve.pg_bind",
                        format!("`{bind}` is not an address like 127.0.0.1:5433"),
                    ))
                }
                Ok(a)
                    if !a.ip().is_loopback()
                        && self.serve.sql_token().is_none()
                        && self.serve.tokens_file().is_none() =>
                {
                    return Err(invalid(
                        "serve.pg_bind",
                        format!(
                            "`{bind}` is beyond loopback: set serve.sql_token (the password) or serve.tokens_file"
                        ),
                    ))
                }
                Ok(_) => {}
            }
        }
        if self.serve.pg_require_tls && self.serve.tls_cert.trim().is_empty() {
            return Err(invalid(
                "serve.pg_require_tls",
                "TLS on the Postgres wire needs serve.tls_cert and serve.tls_key".into(),
            ));
        }
        if self.serve.pg_max_connections == 0 {
            return Err(invalid(
                "serve.pg_max_connections",
                "at least 1 connection".into(),
            ));
        }
        if self.serve.pg_startup_timeout_secs == 0 || self.serve.pg_idle_timeout_secs == 0 {
            return Err(invalid(
                "serve.pg_startup_timeout_secs",
                "the Postgres wire's time limits are at least 1 s (pg_startup_timeout_secs, pg_idle_timeout_secs)".into(),
            ));
        }
        if self.serve.sql_max_rows == 0 {
            return Err(invalid("serve.sql_max_rows", "at least 1 row".into()));
        }
        if !is_memory_size(&self.store.memory_limit) {
            return Err(invalid(
                "store.memory_limit",
                format!(
                    "`{}` is not a size like 2GB or 512MiB (empty: DuckDB's default)",
                    self.store.memory_limit
                ),
            ));
        }
        let grace = self.model.orphan_artifact_grace_hours;
        if !grace.is_finite() || grace < 0.0 {
            return Err(invalid(
                "model.orphan_artifact_grace_hours",
                format!("{grace} is not a number of hours >= 0"),
            ));
        }
        for coin in &self.coins {
            if !is_valid_coin_id(coin) {
                return Err(invalid(
                    "coins",
                    format!(
                        "`{coin}` is not a CoinGecko id (lowercase letters, digits, '-', '_', '.')"
                    ),
                ));
            }
        }
        if !is_valid_coin_id(&self.vs_currency) {
            return Err(invalid(
                "vs_currency",
                format!("`{}` is not a currency code", self.vs_currency),
            ));
        }
        let cg = &self.coingecko;
        if cg.calls_per_minute == 0 {
            return Err(invalid(
                "coingecko.calls_per_minute",
                "must be at least 1".into(),
            ));
        }
        if cg.timeout_secs == 0 {
            return Err(invalid(
                "coingecko.timeout_secs",
                "must be at least 1".into(),
            ));
        }
        if !(4..=90).contains(&cg.max_chunk_days) {
            return Err(invalid(
                "coingecko.max_chunk_days",
                "must be 4..=90: CoinGecko answers ranges over 90 days with daily points".into(),
            ));
        }
        if cg.backfill_days > 3650 {
            return Err(invalid(
                "coingecko.backfill_days",
                format!(
                    "{} days is more than 10 years; 0 means the plan's hourly range",
                    cg.backfill_days
                ),
            ));
        }
        if cg.fetch_every_hours > 24 {
            return Err(invalid(
                "coingecko.fetch_every_hours",
                format!(
                    "{} is more than a day; 0 means: fit the plan's budget",
                    cg.fetch_every_hours
                ),
            ));
        }
        if cg.backoff_base_ms > cg.backoff_max_ms {
            return Err(invalid(
                "coingecko.backoff_base_ms",
                "must not exceed coingecko.backoff_max_ms".into(),
            ));
        }
        if !cg.base_url.trim().is_empty() {
            let parsed = url::Url::parse(cg.base_url.trim())
                .map_err(|e| invalid("coingecko.base_url", e.to_string()))?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(invalid(
                    "coingecko.base_url",
                    "must be an http(s) URL".into(),
                ));
            }
        }
        if cg.plan != Plan::Public && cg.api_key().is_none() {
            return Err(invalid(
                "coingecko.api_key",
                format!("plan `{:?}` needs a key", cg.plan).to_lowercase(),
            ));
        }
        let gate = &self.model.gate;
        for (key, value, range) in [
            (
                "model.gate.coverage_tolerance",
                gate.coverage_tolerance,
                0.0..=0.5,
            ),
            ("model.gate.max_mse_ratio", gate.max_mse_ratio, 0.5..=2.0),
            (
                "model.gate.min_improvement",
                gate.min_improvement,
                0.0..=0.5,
            ),
            (
                "model.gate.max_pinned_share",
                gate.max_pinned_share,
                0.0..=1.0,
            ),
        ] {
            if !range.contains(&value) {
                return Err(invalid(
                    key,
                    format!("{value} is outside {}..={}", range.start(), range.end()),
                ));
            }
        }
        if self.serve.bind.parse::<std::net::SocketAddr>().is_err() {
            return Err(invalid(
                "serve.bind",
                format!(
                    "`{}` is not an address like 127.0.0.1:8000",
                    self.serve.bind
                ),
            ));
        }
        if self.serve.max_concurrent_requests == 0 {
            return Err(invalid(
                "serve.max_concurrent_requests",
                "must be at least 1".into(),
            ));
        }
        for (key, schedule) in [
            ("serve.pipeline_schedule", &self.serve.pipeline_schedule),
            ("serve.retrain_schedule", &self.serve.retrain_schedule),
        ] {
            let schedule = schedule.trim();
            if !schedule.is_empty() {
                if let Err(e) = schedule.parse::<cron::Schedule>() {
                    return Err(invalid(key, format!("`{schedule}`: {e}")));
                }
            }
        }
        if self.pipeline.task_attempts == 0 {
            return Err(invalid(
                "pipeline.task_attempts",
                "must be at least 1".into(),
            ));
        }
        for (name, rule) in &self.quality.rules {
            if let Some(sev) = &rule.severity {
                if sev != "error" && sev != "warn" {
                    return Err(invalid(
                        &format!("quality.rules.{name}.severity"),
                        format!("`{sev}` is neither `error` nor `warn`"),
                    ));
                }
            }
        }
        Ok(())
    }
}
