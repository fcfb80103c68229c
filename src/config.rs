//! Layered settings: `config/default.toml` (built in) < `--config FILE` < `COINCAST__SECTION__KEY`.
//!
//! Every struct denies unknown fields, and deserialization goes through `serde_path_to_error`, so a
//! typo or a wrong type is reported with the full key (`coingecko.calls_per_minute`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use config::{Config, Environment, File, FileFormat};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// The built-in defaults; the same text users read in `config/default.toml`.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

/// Environment prefix: `COINCAST__COINGECKO__API_KEY` sets `coingecko.api_key`.
pub const ENV_PREFIX: &str = "COINCAST";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("invalid setting `{key}`: {message}")]
    Invalid { key: String, message: String },
    #[error("{0}")]
    Other(String),
}

/// A server's name as `x-coincast-instance` and `predictions.instance` carry it: 1-64 of
/// `[A-Za-z0-9._:-]`.
pub fn is_instance_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-'))
}

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

/// Integers too large for any setting would be read as floats and cut down silently: refused
/// here, naming the key.
fn check_env_integers(env: &config::Map<String, String>) -> Result<(), ConfigError> {
    for (var, value) in env {
        let digits = value.trim().trim_start_matches('-');
        let integer = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
        if integer && value.trim().parse::<i64>().is_err() {
            return Err(ConfigError::Invalid {
                key: Settings::key_of_env(var),
                message: format!("`{value}` is out of range (from {var})"),
            });
        }
    }
    Ok(())
}

impl crate::failure::Classify for ConfigError {
    fn failure(&self) -> crate::failure::Failure {
        crate::failure::Failure::Usage
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub data_dir: PathBuf,
    pub coins: Vec<String>,
    pub vs_currency: String,
    pub coingecko: CoinGeckoSettings,
    pub quality: QualitySettings,
    pub model: ModelSettings,
    pub serve: ServeSettings,
    pub pipeline: PipelineSettings,
    pub store: StoreSettings,
    pub lake: LakeSettings,
    pub retention: RetentionSettings,
    pub s3: S3Settings,
    pub publish: PublishSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeSettings {
    pub bind: String,
    /// This server's name among serving instances (`predictions.instance`); empty: the host
    /// name and the bind port.
    pub instance: String,
    pub max_data_age_hours: u64,
    pub max_body_bytes: usize,
    pub request_timeout_secs: u64,
    pub max_concurrent_requests: usize,
    pub pipeline_schedule: String,
    pub retrain_schedule: String,
    pub api_token: SecretString,
    /// Bearer token (or Basic password) for reading: `/predict`, the pages and `/api/*`.
    pub read_token: SecretString,
    /// Bearer token (or Basic password) for SQL: `POST /api/sql` and the query box on `/sql`.
    pub sql_token: SecretString,
    /// A query is interrupted after this long (less than `request_timeout_secs`).
    pub sql_timeout_secs: u64,
    /// The pages' connections, and how long one page's read may take (below
    /// `request_timeout_secs`).
    pub page_connections: usize,
    pub page_timeout_secs: u64,
    /// Most rows a query returns (`limit` in the request, up to this).
    pub sql_max_rows: usize,
    /// The SQL sandbox's DuckDB memory limit and threads.
    pub sql_memory_limit: String,
    pub sql_threads: usize,
    /// Where the Postgres-wire endpoint listens (empty: off).
    pub pg_bind: String,
    /// Most rows one query returns over the Postgres wire (whole tables, for BI tools).
    pub pg_max_rows: usize,
    /// PEM certificate chain and private key: `serve` answers HTTPS only (both, or neither).
    pub tls_cert: String,
    pub tls_key: String,
    /// The writer's URL, named by a replica's 409 to admin and SQL requests.
    pub writer_url: String,
}

impl ServeSettings {
    /// This server's name: `instance`, else `<host name>:<bind port>` (a host name with other
    /// characters than [`is_instance_name`] allows gives `localhost`).
    pub fn instance_name(&self) -> String {
        let configured = self.instance.trim();
        if !configured.is_empty() {
            return configured.to_string();
        }
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .ok()
            .filter(|h| is_instance_name(h))
            .unwrap_or_else(|| "localhost".into());
        let port = self.bind.rsplit(':').next().unwrap_or("");
        format!("{host}:{port}")
    }

    /// The manual-trigger token, if one is configured.
    pub fn api_token(&self) -> Option<&str> {
        let t = self.api_token.expose_secret().trim();
        (!t.is_empty()).then_some(t)
    }

    /// The Postgres-wire address, when the endpoint is on.
    pub fn pg_bind(&self) -> Option<&str> {
        Some(self.pg_bind.trim()).filter(|b| !b.is_empty())
    }

    /// The certificate and key files when TLS is on.
    pub fn tls(&self) -> Option<(&Path, &Path)> {
        let (cert, key) = (self.tls_cert.trim(), self.tls_key.trim());
        (!cert.is_empty() && !key.is_empty()).then(|| (Path::new(cert), Path::new(key)))
    }

    /// Whether `bind` is a loopback address (only this machine can connect).
    pub fn binds_loopback_only(&self) -> bool {
        self.bind
            .parse::<std::net::SocketAddr>()
            .is_ok_and(|a| a.ip().is_loopback())
    }

    /// The SQL token: `sql_token`, else the readers' token (else SQL is open on a loopback bind
    /// only).
    pub fn sql_token(&self) -> Option<&str> {
        let t = self.sql_token.expose_secret().trim();
        (!t.is_empty()).then_some(t).or_else(|| self.read_token())
    }

    /// The readers' token, if one is configured (else reading is open).
    pub fn read_token(&self) -> Option<&str> {
        let t = self.read_token.expose_secret().trim();
        (!t.is_empty()).then_some(t)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSettings {
    /// The promotion gate (`[model.gate]`).
    pub gate: GateRules,
    /// Artifact folders that no registered model names (left by a crash) are removed after this.
    pub orphan_artifact_grace_hours: f64,
    /// LSTM spec file for training inside `serve`; empty: the built-in models/lstm.toml.
    pub spec: String,
    /// Walk-forward protocol file; empty: the built-in models/baselines.toml.
    pub protocol: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum Plan {
    Public,
    Demo,
    Pro,
}

impl Plan {
    const ALL: [(&'static str, Plan); 3] = [
        ("public", Plan::Public),
        ("demo", Plan::Demo),
        ("pro", Plan::Pro),
    ];
}

/// Read as a string, so that a wrong value's error lists the accepted ones (serde's own names
/// the Rust enum instead).
impl TryFrom<String> for Plan {
    type Error = String;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Plan::ALL
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(value.trim()))
            .map(|&(_, plan)| plan)
            .ok_or_else(|| {
                let names: Vec<&str> = Plan::ALL.iter().map(|(n, _)| *n).collect();
                format!("`{value}` is not a plan: use one of {}", names.join(", "))
            })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoinGeckoSettings {
    pub plan: Plan,
    pub base_url: String,
    pub api_key: SecretString,
    pub calls_per_minute: u32,
    pub timeout_secs: u64,
    pub max_retries: u32,
    pub backoff_base_ms: u64,
    pub backoff_max_ms: u64,
    pub max_retry_after_secs: u64,
    /// Days of history for a coin with none; 0: the plan's hourly range.
    pub backfill_days: u32,
    pub max_chunk_days: u32,
    /// Calls a month the plan allows; 0: the plan's (Demo 10,000, paid Basic 100,000; public none).
    pub monthly_call_budget: u32,
    /// Hours between two fetches of a coin by the schedule; 0: the smallest that fits the budget.
    pub fetch_every_hours: u32,
}

impl CoinGeckoSettings {
    /// The API root: the configured one, else the plan's official host.
    pub fn effective_base_url(&self) -> String {
        if !self.base_url.trim().is_empty() {
            return self.base_url.trim().trim_end_matches('/').to_string();
        }
        match self.plan {
            Plan::Pro => "https://pro-api.coingecko.com/api/v3".into(),
            Plan::Public | Plan::Demo => "https://api.coingecko.com/api/v3".into(),
        }
    }

    /// The key, if one is set (an empty string means none).
    pub fn api_key(&self) -> Option<&str> {
        let key = self.api_key.expose_secret().trim();
        (!key.is_empty()).then_some(key)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QualitySettings {
    pub extra_rules_dir: PathBuf,
    pub max_failing_rows: u32,
    #[serde(default)]
    pub rules: BTreeMap<String, RuleOverride>,
}

/// A user's change to one rule; unset fields keep the rule header's value.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleOverride {
    pub threshold: Option<f64>,
    pub severity: Option<String>,
    pub enabled: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineSettings {
    pub task_attempts: u32,
    pub retry_delay_secs: u64,
}

/// How DuckDB may use the machine (or the container's share of it).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSettings {
    /// Worker threads; 0: the CPUs this process may use (a container's CPU quota included).
    pub threads: usize,
    /// DuckDB's memory limit, e.g. "2GB"; empty: DuckDB's default (80% of the memory this
    /// process may use, a container's limit included).
    pub memory_limit: String,
}

/// The lake: dataset versions as DuckLake snapshots (`crate::lake`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LakeSettings {
    /// Commit every pipeline run's changes as a lake snapshot.
    pub enabled: bool,
    /// The catalog: a file path (a DuckDB-file catalog, one process), `postgres:<libpq string>`
    /// (many machines) or `sqlite:<path>`; empty: `<data_dir>/lake/catalog.ducklake`.
    pub catalog: String,
    /// Where the Parquet files go: a folder or `s3://bucket/prefix`; empty: `<data_dir>/lake/data`.
    pub data_path: String,
    /// The folder of the DuckDB extension files (ducklake, httpfs, postgres_scanner,
    /// sqlite_scanner); empty:
    /// `lib/duckdb-extensions` beside the binary (the image), else where the build fetched them.
    pub extension_dir: String,
}

/// The `cleanup` task (`crate::retention`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionSettings {
    /// Run `cleanup` after each scheduled or manual retrain.
    pub enabled: bool,
    /// Raw bodies of merged batches older than this move to the lake.
    pub raw_body_days: u32,
    /// Lake snapshots older than this are expired (except the kept and pinned ones).
    pub snapshot_days: u32,
    /// The newest models kept besides the champion, floor, rollback target and challengers.
    pub keep_models: u32,
    /// Blobs no model or backup names are removed from the bucket once older than this.
    pub bucket_grace_hours: u32,
    /// Served predictions stay raw this many days after their target hour (at least 7, the
    /// live-accuracy window), then are rolled up into `prediction_daily`.
    pub prediction_days: u32,
}

/// An S3-compatible object store for `lake.data_path = "s3://..."`. Credentials come from
/// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN`), never from here.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Settings {
    /// e.g. `http://127.0.0.1:8333`; empty: AWS.
    pub endpoint: String,
    pub region: String,
    /// `path` (most S3-compatible servers) or `vhost` (AWS).
    pub url_style: String,
    /// Allow an `http://` endpoint (no TLS).
    pub allow_http: bool,
}

/// `[model.gate]`: the rules the promotion gate (`crate::model::gate`) applies.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct GateRules {
    /// Largest distance of a coin's coverage from nominal (0.03 = ±3 points).
    pub coverage_tolerance: f64,
    /// Largest ratio of the candidate's point MSE to persistence's (1.001 = 0.1 % worse).
    pub max_mse_ratio: f64,
    /// Share by which the interval score must improve on the champion's to replace it.
    pub min_improvement: f64,
}

/// The serving publication (`crate::publish`): what a writer puts out for replicas.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishSettings {
    /// `file:///dir` (a shared volume) or `s3://bucket/prefix` (through `[s3]`); empty: none.
    pub url: String,
    /// How often a replica reads the manifest, in seconds.
    pub poll_secs: u64,
    /// Days of each coin's series a publication carries (at least 31: the scales' 30-day window
    /// and the LSTM's lookback come before the first hour a replica forecasts from).
    pub series_days: u32,
    /// Publications kept at the URL (older ones and the files only they name are removed).
    pub keep_versions: u32,
}

impl PublishSettings {
    /// The URL, when a serving publication is configured.
    pub fn url(&self) -> Option<&str> {
        Some(self.url.trim()).filter(|u| !u.is_empty())
    }
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
    /// Loads defaults, then `file` if given, then the process environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_with_env(file, std::env::vars())
    }

    /// As [`Settings::load`], with the environment given explicitly (tests).
    pub fn load_with_env(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut builder =
            Config::builder().add_source(File::from_str(DEFAULT_TOML, FileFormat::Toml));
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
            // Parse it on its own first so that a syntax error names this file.
            Config::builder()
                .add_source(File::from_str(&text, FileFormat::Toml))
                .build()
                .map_err(|e| ConfigError::File {
                    path: path.to_path_buf(),
                    message: e.to_string(),
                })?;
            builder = builder.add_source(File::from_str(&text, FileFormat::Toml));
        }
        let env: config::Map<String, String> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with(&format!("{ENV_PREFIX}__")))
            .collect();
        check_env_integers(&env)?;
        builder = builder.add_source(
            Environment::with_prefix(ENV_PREFIX)
                .prefix_separator("__")
                .separator("__")
                .list_separator(",")
                .with_list_parse_key("coins")
                .try_parsing(true)
                .source(Some(env)),
        );
        let merged = builder
            .build()
            .map_err(|e| ConfigError::Other(e.to_string()))?;
        let settings: Settings =
            serde_path_to_error::deserialize(merged).map_err(|e| ConfigError::Invalid {
                key: e.path().to_string(),
                message: e.inner().to_string(),
            })?;
        settings.validate()?;
        Ok(settings)
    }

    /// The dotted key an environment variable sets: `COINCAST__SERVE__MAX_BODY_BYTES` is
    /// `serve.max_body_bytes`.
    pub fn key_of_env(var: &str) -> String {
        var.trim_start_matches(ENV_PREFIX)
            .trim_start_matches("__")
            .split("__")
            .map(str::to_lowercase)
            .collect::<Vec<_>>()
            .join(".")
    }

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

    fn validate(&self) -> Result<(), ConfigError> {
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
                Ok(a) if !a.ip().is_loopback() && self.serve.sql_token().is_none() => {
                    return Err(invalid(
                        "serve.pg_bind",
                        format!("`{bind}` is beyond loopback: set serve.sql_token (the password)"),
                    ))
                }
                Ok(_) => {}
            }
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

/// CoinGecko ids are lowercase slugs; this also keeps them safe in URLs and file names.
pub fn is_valid_coin_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 100
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b))
        && !id.starts_with('.')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_load() {
        let s = Settings::load_with_env(None, env(&[])).expect("defaults are valid");
        assert_eq!(s.coins.len(), 5);
        assert_eq!(s.coingecko.plan, Plan::Public);
        assert!(s.coingecko.api_key().is_none());
        assert_eq!(
            s.coingecko.effective_base_url(),
            "https://api.coingecko.com/api/v3"
        );
    }

    #[test]
    fn env_overrides_nested_keys_and_lists() {
        let s = Settings::load_with_env(
            None,
            env(&[
                ("COINCAST__COINGECKO__PLAN", "pro"),
                ("COINCAST__COINGECKO__API_KEY", "k-123"),
                ("COINCAST__COINS", "bitcoin,solana"),
                ("COINCAST__COINGECKO__CALLS_PER_MINUTE", "250"),
            ]),
        )
        .expect("valid");
        assert_eq!(s.coins, vec!["bitcoin", "solana"]);
        assert_eq!(s.coingecko.api_key(), Some("k-123"));
        assert_eq!(s.coingecko.calls_per_minute, 250);
        assert_eq!(
            s.coingecko.effective_base_url(),
            "https://pro-api.coingecko.com/api/v3"
        );
    }

    #[test]
    fn an_instance_name_fit_for_a_header_is_required() {
        for bad in ["two words", "naïve", "a\r\nx-evil: 1", &"x".repeat(65)] {
            let err = Settings::load_with_env(None, env(&[("COINCAST__SERVE__INSTANCE", bad)]))
                .expect_err(bad);
            assert!(err.to_string().contains("serve.instance"), "{err}");
        }
        let s = Settings::load_with_env(
            None,
            env(&[("COINCAST__SERVE__INSTANCE", "replica-2.eu:8000")]),
        )
        .expect("valid");
        assert_eq!(s.serve.instance_name(), "replica-2.eu:8000");
        let default = Settings::load_with_env(None, env(&[])).expect("valid");
        assert!(is_instance_name(&default.serve.instance_name()));
    }

    #[test]
    fn unknown_env_key_is_named() {
        let err = Settings::load_with_env(None, env(&[("COINCAST__COINGECKO__API_KEE", "x")]))
            .expect_err("unknown key");
        let text = err.to_string();
        assert!(
            text.contains("coingecko") && text.contains("api_kee"),
            "{text}"
        );
    }

    #[test]
    fn wrong_type_in_file_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "[coingecko]\ncalls_per_minute = \"many\"\n").expect("write");
        let text = Settings::load_with_env(Some(&path), env(&[]))
            .expect_err("bad type")
            .to_string();
        assert!(text.contains("coingecko.calls_per_minute"), "{text}");
    }

    #[test]
    fn a_wrong_plan_names_the_key_and_the_accepted_values() {
        for source in ["file", "env"] {
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("c.toml");
            std::fs::write(&path, "[coingecko]\nplan = \"gold\"\n").expect("write");
            let result = match source {
                "file" => Settings::load_with_env(Some(&path), env(&[])),
                _ => Settings::load_with_env(None, env(&[("COINCAST__COINGECKO__PLAN", "gold")])),
            };
            let text = result.expect_err("gold is no plan").to_string();
            assert!(text.contains("coingecko.plan"), "{source}: {text}");
            assert!(text.contains("public, demo, pro"), "{source}: {text}");
            assert!(!text.contains("variant constructor"), "{source}: {text}");
        }
    }

    #[test]
    fn syntax_error_names_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("broken.toml");
        std::fs::write(&path, "coins = [\n").expect("write");
        let text = Settings::load_with_env(Some(&path), env(&[]))
            .expect_err("syntax")
            .to_string();
        assert!(text.contains("broken.toml"), "{text}");
    }

    #[test]
    fn key_is_never_in_debug_output() {
        let s = Settings::load_with_env(
            None,
            env(&[
                ("COINCAST__COINGECKO__PLAN", "demo"),
                ("COINCAST__COINGECKO__API_KEY", "super-secret-key"),
            ]),
        )
        .expect("valid");
        assert!(!format!("{s:?}").contains("super-secret-key"));
    }

    #[test]
    fn paid_plan_without_key_is_refused() {
        let text = Settings::load_with_env(None, env(&[("COINCAST__COINGECKO__PLAN", "demo")]))
            .expect_err("no key")
            .to_string();
        assert!(text.contains("coingecko.api_key"), "{text}");
    }

    #[test]
    fn coin_ids_are_checked() {
        assert!(is_valid_coin_id("bitcoin"));
        assert!(is_valid_coin_id("usd-coin"));
        assert!(!is_valid_coin_id("Bitcoin"));
        assert!(!is_valid_coin_id("../etc"));
        assert!(!is_valid_coin_id("<script>"));
    }
}
