//! SQL for analysts while the appliance runs: read-only queries on the published copy
//! (`store::publish`), never on the live file; on a replica, on the lake (`Queries::open_lake`).
//!
//! Invariants:
//! - each published copy gets a fresh sandbox (`sandbox.rs`): its own DuckDB instance, opened
//!   read-only, external access and extension loading off, memory and threads bounded, the
//!   configuration locked last; a locked instance cannot attach anything, hence one per copy;
//! - the lake's sandbox attaches it read-only before the lock, opens only its data path to reads
//!   (`allowed_directories`), and is never opened while the catalog's string holds a password;
//!   the S3 secret lives in DuckDB's secret manager, which shows it redacted;
//! - a query is exactly one read statement, as DuckDB's own parser and binder say (SELECT and
//!   WITH, DESCRIBE, SHOW, SUMMARIZE, EXPLAIN);
//! - time is bounded by interrupting the connection after `serve.sql_timeout_secs`, rows by the
//!   request's limit (at most `serve.sql_max_rows`).

mod sandbox;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value as Json;

use duckdb::types::{TimeUnit, Value};
pub use sandbox::Limits;
use sandbox::Sandbox;

use crate::config::Settings;

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("{0}")]
    BadSql(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("the query ran past serve.sql_timeout_secs = {0} s and was interrupted")]
    Timeout(u64),
    #[error("{0}")]
    Unavailable(String),
    #[error("the SQL sandbox failed: {0}")]
    Sandbox(String),
    #[error(transparent)]
    Sql(#[from] duckdb::Error),
}

/// One query's answer.
#[derive(Debug, Serialize)]
pub struct QueryResult {
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<Json>>,
    /// More rows were there than `limit`: the answer is not the whole result.
    pub truncated: bool,
    /// The most rows this answer could hold.
    pub limit: usize,
    pub elapsed_ms: f64,
    /// The publication the query read (`store::Publication::version`).
    pub published: String,
}

#[derive(Debug, Serialize)]
pub struct Column {
    pub name: String,
    #[serde(rename = "type")]
    pub type_name: String,
}

struct Current {
    sandbox: Arc<Mutex<Sandbox>>,
    version: String,
    source: Source,
}

/// What a sandbox reads.
#[derive(Debug, Clone)]
enum Source {
    /// A published copy of this server's file.
    Copy,
    /// The lake, read-only; a query naming a table it lacks is told where that table is.
    Lake { elsewhere: String },
}

/// The tables a replica's SQL reads from the lake (`sql/query/lake_views.sql`).
pub const LAKE_TABLES: [&str; 4] = ["market_data", "features", "quality_results", "raw_batches"];

/// The sandbox over the newest published copy; queries run one at a time on it.
pub struct Queries {
    limits: Limits,
    timeout: Duration,
    current: Mutex<Option<Current>>,
    /// Why the lake's sandbox could not be opened (until it is).
    lake_problem: Mutex<Option<String>>,
}

impl Queries {
    pub fn new(limits: Limits, timeout: Duration) -> Self {
        Self {
            limits,
            timeout,
            current: Mutex::new(None),
            lake_problem: Mutex::new(None),
        }
    }

    /// Opens a fresh sandbox over the copy at `path` (published as `version`); queries in flight
    /// finish on the previous one, which closes after them.
    pub fn open(&self, path: &Path, version: &str) -> Result<(), QueryError> {
        let sandbox = Sandbox::open(path, &self.limits)?;
        self.install(sandbox, version, Source::Copy)
    }

    /// Opens a sandbox over the lake (its catalog shared in PostgreSQL), for a server with no
    /// published copy of its own: every query reads the newest dataset version. `elsewhere` says
    /// where the tables the lake does not hold are (the writer).
    pub fn open_lake(&self, settings: &Settings, elsewhere: &str) -> Result<(), QueryError> {
        let sandbox = Sandbox::open_lake(settings, &self.limits).inspect_err(|e| {
            if let Ok(mut problem) = self.lake_problem.lock() {
                *problem = Some(e.to_string());
            }
        })?;
        if let Ok(mut problem) = self.lake_problem.lock() {
            *problem = None;
        }
        let source = Source::Lake {
            elsewhere: elsewhere.to_string(),
        };
        self.install(sandbox, "lake", source)
    }

    /// Makes `sandbox` the one new queries run on; queries in flight finish on the previous one.
    fn install(&self, sandbox: Sandbox, version: &str, source: Source) -> Result<(), QueryError> {
        let mut current = self
            .current
            .lock()
            .map_err(|_| QueryError::Sandbox("the sandbox slot is poisoned".into()))?;
        *current = Some(Current {
            sandbox: Arc::new(Mutex::new(sandbox)),
            version: version.to_string(),
            source,
        });
        Ok(())
    }

    /// Why the lake's sandbox could not be opened, if it could not.
    pub fn lake_problem(&self) -> Option<String> {
        self.lake_problem.lock().ok().and_then(|p| p.clone())
    }

    /// Whether queries read the lake.
    pub fn reads_lake(&self) -> bool {
        self.current
            .lock()
            .is_ok_and(|c| matches!(c.as_ref(), Some(c) if matches!(c.source, Source::Lake { .. })))
    }

    /// The sandbox of the newest copy and its version.
    fn current(&self) -> Result<(Arc<Mutex<Sandbox>>, String, Source), QueryError> {
        let current = self
            .current
            .lock()
            .map_err(|_| QueryError::Sandbox("the sandbox slot is poisoned".into()))?;
        let current = current.as_ref().ok_or_else(|| {
            QueryError::Unavailable(self.lake_problem().unwrap_or_else(|| {
                "nothing is published yet: the first pipeline run (or `coincast export`) publishes the copy queries read".into()
            }))
        })?;
        Ok((
            current.sandbox.clone(),
            current.version.clone(),
            current.source.clone(),
        ))
    }

    /// Runs one read statement; at most `limit` rows.
    pub fn run(&self, sql: &str, limit: usize) -> Result<QueryResult, QueryError> {
        self.run_with(sql, &[], limit)
    }

    /// As `run`, with `$1`, `$2` ... bound to `params` as text (NULL for `None`); DuckDB casts
    /// each to the type its place asks for.
    pub fn run_with(
        &self,
        sql: &str,
        params: &[Option<String>],
        limit: usize,
    ) -> Result<QueryResult, QueryError> {
        let (sandbox, version, source) = self.current()?;
        let sandbox = sandbox
            .lock()
            .map_err(|_| QueryError::Sandbox("the sandbox is poisoned".into()))?;
        sandbox
            .check_single_read(sql)
            .map_err(|e| source.explain(e))?;
        let started = Instant::now();
        let conn = sandbox.conn()?;
        let watchdog = Watchdog::start(conn.interrupt_handle(), self.timeout);
        let result = read_rows(conn, sql, params, limit);
        let timed_out = watchdog.finish();
        let (columns, rows, truncated) = match result {
            Err(_) if timed_out => return Err(QueryError::Timeout(self.timeout.as_secs())),
            Err(e) => return Err(source.explain(classify_run_error(e))),
            Ok(out) => out,
        };
        let version = match source {
            Source::Copy => version,
            Source::Lake { .. } => lake_snapshot(conn),
        };
        Ok(QueryResult {
            columns,
            rows,
            truncated,
            limit,
            elapsed_ms: started.elapsed().as_secs_f64() * 1000.0,
            published: version,
        })
    }

    /// The result columns of one read statement, without running it (a Postgres client's
    /// Describe).
    pub fn describe(&self, sql: &str) -> Result<Vec<Column>, QueryError> {
        let (sandbox, _, source) = self.current()?;
        let sandbox = sandbox
            .lock()
            .map_err(|_| QueryError::Sandbox("the sandbox is poisoned".into()))?;
        sandbox.describe(sql).map_err(|e| source.explain(e))
    }

    /// The publication the current sandbox reads, if any (for the page).
    pub fn published_version(&self) -> Option<String> {
        self.current
            .lock()
            .ok()?
            .as_ref()
            .map(|c| c.version.clone())
    }
}

impl Source {
    /// A lake query that names a table the lake lacks is told which tables it holds and where
    /// the others are.
    fn explain(&self, e: QueryError) -> QueryError {
        let Source::Lake { elsewhere } = self else {
            return e;
        };
        match e {
            QueryError::BadSql(message)
                if message.contains("Catalog Error") && message.contains("does not exist") =>
            {
                QueryError::BadSql(format!(
                    "{message}\n\nSQL here reads the lake, which holds {} (and every dataset \
                     version: FROM lake.market_data AT (VERSION => n), lake.snapshots()); the \
                     other tables are {elsewhere}",
                    LAKE_TABLES.join(", ")
                ))
            }
            other => other,
        }
    }
}

/// The lake's newest snapshot when a query finished, as its `published`.
fn lake_snapshot(conn: &duckdb::Connection) -> String {
    conn.query_row("FROM ducklake_current_snapshot('lake')", [], |r| {
        r.get::<_, i64>(0)
    })
    .map_or_else(|_| "lake".into(), |id| format!("lake snapshot {id}"))
}

type Rows = (Vec<Column>, Vec<Vec<Json>>, bool);

fn read_rows(
    conn: &duckdb::Connection,
    sql: &str,
    params: &[Option<String>],
    limit: usize,
) -> Result<Rows, duckdb::Error> {
    let mut stmt = conn.prepare(sql)?;
    let mut rows = stmt.query(duckdb::params_from_iter(params.iter()))?;
    let columns: Vec<Column> = rows.as_ref().map(columns_of).unwrap_or_default();
    let mut out = Vec::new();
    let mut truncated = false;
    while let Some(row) = rows.next()? {
        if out.len() == limit {
            truncated = true;
            break;
        }
        let mut values = Vec::with_capacity(columns.len());
        for i in 0..columns.len() {
            values.push(to_json(row.get::<_, Value>(i)?));
        }
        out.push(values);
    }
    Ok((columns, out, truncated))
}

fn columns_of(stmt: &duckdb::Statement<'_>) -> Vec<Column> {
    (0..stmt.column_count())
        .map(|i| Column {
            name: stmt
                .column_name(i)
                .map_or_else(|_| format!("column{i}"), |n| n.to_string()),
            type_name: duckdb_type_name(&stmt.column_type(i)),
        })
        .collect()
}

/// DuckDB's name for a result column's type (the crate reports Arrow's).
fn duckdb_type_name(t: &duckdb::arrow::datatypes::DataType) -> String {
    use duckdb::arrow::datatypes::DataType as A;
    match t {
        A::Boolean => "BOOLEAN".into(),
        A::Int8 => "TINYINT".into(),
        A::Int16 => "SMALLINT".into(),
        A::Int32 => "INTEGER".into(),
        A::Int64 => "BIGINT".into(),
        A::UInt8 => "UTINYINT".into(),
        A::UInt16 => "USMALLINT".into(),
        A::UInt32 => "UINTEGER".into(),
        A::UInt64 => "UBIGINT".into(),
        A::Float32 => "FLOAT".into(),
        A::Float64 => "DOUBLE".into(),
        A::Utf8 | A::LargeUtf8 | A::Utf8View => "VARCHAR".into(),
        A::Binary | A::LargeBinary | A::BinaryView => "BLOB".into(),
        A::Date32 | A::Date64 => "DATE".into(),
        A::Time32(_) | A::Time64(_) => "TIME".into(),
        A::Timestamp(_, Some(_)) => "TIMESTAMP WITH TIME ZONE".into(),
        A::Timestamp(_, None) => "TIMESTAMP".into(),
        A::Interval(_) => "INTERVAL".into(),
        A::Decimal128(p, s) => format!("DECIMAL({p},{s})"),
        A::List(f) | A::LargeList(f) => format!("{}[]", duckdb_type_name(f.data_type())),
        other => other.to_string(),
    }
}

/// A value as JSON: numbers stay numbers (non-finite ones become strings), times are ISO 8601.
fn to_json(value: Value) -> Json {
    match value {
        Value::Null => Json::Null,
        Value::Boolean(b) => Json::Bool(b),
        Value::TinyInt(v) => v.into(),
        Value::SmallInt(v) => v.into(),
        Value::Int(v) => v.into(),
        Value::BigInt(v) => v.into(),
        Value::UTinyInt(v) => v.into(),
        Value::USmallInt(v) => v.into(),
        Value::UInt(v) => v.into(),
        Value::UBigInt(v) => v.into(),
        Value::HugeInt(v) => Json::String(v.to_string()),
        Value::UHugeInt(v) => Json::String(v.to_string()),
        Value::Float(v) => finite(f64::from(v)),
        Value::Double(v) => finite(v),
        Value::Decimal(d) => Json::String(d.to_string()),
        Value::Timestamp(unit, v) => timestamp(unit, v),
        Value::Date32(days) => chrono::DateTime::from_timestamp(i64::from(days) * 86_400, 0)
            .map_or(Json::Null, |d| {
                Json::String(d.format("%Y-%m-%d").to_string())
            }),
        Value::Text(s) | Value::Enum(s) => Json::String(s),
        Value::Blob(b) | Value::Geometry(b) => Json::String(format!("<{} bytes>", b.len())),
        Value::List(items) | Value::Array(items) => {
            Json::Array(items.into_iter().map(to_json).collect())
        }
        Value::Union(inner) => to_json(*inner),
        other => Json::String(format!("{other:?}")),
    }
}

fn finite(v: f64) -> Json {
    serde_json::Number::from_f64(v).map_or_else(|| Json::String(v.to_string()), Json::Number)
}

fn timestamp(unit: TimeUnit, value: i64) -> Json {
    let micros = unit.to_micros(value);
    chrono::DateTime::from_timestamp_micros(micros).map_or(Json::Null, |t| {
        Json::String(t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
    })
}

/// Whether DuckDB's message says the sandbox's lock refused the statement (a file or network
/// function with external access off), at bind time or when it ran.
fn refused_by_sandbox(message: &str) -> bool {
    [
        "Permission Error",
        "disabled by configuration",
        "external access",
    ]
    .iter()
    .any(|marker| message.contains(marker))
}

/// A run that the sandbox refused is forbidden; one past its memory too.
fn classify_run_error(e: duckdb::Error) -> QueryError {
    let message = e.to_string();
    if refused_by_sandbox(&message) {
        QueryError::Forbidden(message)
    } else if message.contains("Out of Memory") {
        QueryError::Forbidden(format!(
            "the query needs more memory than the sandbox has: {message}"
        ))
    } else {
        QueryError::BadSql(message)
    }
}

/// Interrupts the connection once the timeout passes, unless the query finished first.
pub(crate) struct Watchdog {
    done: Arc<AtomicBool>,
    fired: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watchdog {
    pub(crate) fn start(handle: Arc<duckdb::InterruptHandle>, timeout: Duration) -> Self {
        let (done, fired) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        );
        let (d, f) = (done.clone(), fired.clone());
        let thread = std::thread::Builder::new()
            .name("sql-watchdog".into())
            .spawn(move || {
                let deadline = Instant::now() + timeout;
                while !d.load(Ordering::SeqCst) {
                    let now = Instant::now();
                    if now >= deadline {
                        f.store(true, Ordering::SeqCst);
                        handle.interrupt();
                        return;
                    }
                    std::thread::park_timeout((deadline - now).min(Duration::from_millis(50)));
                }
            })
            .ok();
        Self {
            done,
            fired,
            thread,
        }
    }

    /// Stops the watchdog; whether it interrupted the query.
    pub(crate) fn finish(mut self) -> bool {
        self.done.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
        self.fired.load(Ordering::SeqCst)
    }
}
