//! Layered settings: `config/default.toml` (built in) < `--config FILE` < `COINCAST__SECTION__KEY`.
//!
//! Every struct denies unknown fields, and deserialization goes through `serde_path_to_error`, so a
//! typo or a wrong type is reported with the full key (`coingecko.calls_per_minute`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

mod validate;

use config::{Config, Environment, File, FileFormat};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// The built-in defaults; the same text users read in `config/default.toml`.
pub const DEFAULT_TOML: &str = include_str!("../../config/default.toml");

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
    /// Named tokens (`coincast tokens`), reread when the file changes; empty: none.
    pub tokens_file: String,
    /// Requests a minute per token name, unless its entry says otherwise (0: no limit).
    pub token_requests_per_minute: u32,
    /// The Postgres wire refuses connections without TLS (needs `tls_cert` and `tls_key`).
    pub pg_require_tls: bool,
    /// Connections the Postgres wire holds at once; more are refused (SQLSTATE 53300).
    pub pg_max_connections: usize,
    /// A connection that has not finished its start-up and password by then is closed.
    pub pg_startup_timeout_secs: u64,
    /// A connection with no query for this long is closed.
    pub pg_idle_timeout_secs: u64,
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

    /// The tokens file, when one is configured.
    pub fn tokens_file(&self) -> Option<std::path::PathBuf> {
        Some(self.tokens_file.trim())
            .filter(|f| !f.is_empty())
            .map(std::path::PathBuf::from)
    }

    /// `sql_token` itself (without the readers' token behind it).
    pub fn own_sql_token(&self) -> Option<&str> {
        let t = self.sql_token.expose_secret().trim();
        (!t.is_empty()).then_some(t)
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
    /// Audit events older than this are deleted by cleanup (0: kept forever).
    pub audit_days: u32,
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
    /// Largest share of a coin's served forecasts drawn with the ACI level pinned at a bound
    /// (0.05 = 5%).
    pub max_pinned_share: f64,
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
