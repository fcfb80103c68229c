//! The Postgres-wire endpoint (`serve.pg_bind`, off by default): psql, psycopg, Grafana and BI
//! tools query the published copy through the same sandbox as `POST /api/sql`
//! (`crate::query`). The password is a token of the sql scope (`crate::access`; any user name);
//! every statement is recorded in the audit trail under the token's name. TLS with the server's
//! certificate, a cap on connections and time limits for start-up and idleness are here too.
//!
//! Both the simple and the extended query protocols are served (pgwire). What clients send
//! besides queries is answered here: `BEGIN`, `COMMIT`, `ROLLBACK` and harmless `SET`s are
//! no-ops, and psql's catalog queries are rewritten where DuckDB's `pg_catalog` differs
//! (`catalog.rs`). Values go out typed (integers, floats, booleans) or as text.

mod catalog;

use std::fmt::Debug;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures_util::stream;
use pgwire::api::auth::cleartext::CleartextPasswordAuthStartupHandler;
use pgwire::api::auth::noop::NoopStartupHandler;
use pgwire::api::auth::{AuthSource, DefaultServerParameterProvider, LoginInfo, Password};
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{
    DataRowEncoder, DescribePortalResponse, DescribeStatementResponse, FieldInfo, QueryResponse,
    Response, Tag,
};
use pgwire::api::stmt::{NoopQueryParser, StoredStatement};
use pgwire::api::{ClientInfo, PgWireServerHandlers, Type};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::access::{AuditEvent, Channel, Scope};
use crate::query::{QueryError, QueryResult};
use crate::runtime::Runtime;

/// The server version told to clients: psql shapes its catalog queries by it.
const SERVER_VERSION: &str = "15.0 (coincast, DuckDB underneath)";

/// Serves until `shutdown` resolves; each connection gets a task of its own, at most
/// `serve.pg_max_connections` at once (more are refused with SQLSTATE 53300), each closed when it
/// has not authenticated within `serve.pg_startup_timeout_secs` or stays without a query for
/// `serve.pg_idle_timeout_secs`. With `serve.tls_cert` and `tls_key`, clients may ask for TLS
/// (`sslmode=require`, `verify-full`); with `serve.pg_require_tls`, they must.
pub async fn serve(
    listener: TcpListener,
    runtime: Arc<Runtime>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let serve = &runtime.settings().serve;
    let tls = tls_acceptor(serve)?;
    let limits = Limits {
        startup: Duration::from_secs(serve.pg_startup_timeout_secs),
        idle: Duration::from_secs(serve.pg_idle_timeout_secs),
    };
    let permits = Arc::new(Semaphore::new(serve.pg_max_connections));
    let parser = Arc::new(NoopQueryParser::new());
    tokio::pin!(shutdown);
    loop {
        let (socket, peer) = tokio::select! {
            () = &mut shutdown => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!("pg: accepting a connection: {e}");
                    continue;
                }
            },
        };
        let metrics = runtime.metrics().clone();
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            metrics
                .coincast_pg_connections_closed_total
                .with_label_values(&["limit"])
                .inc();
            tokio::spawn(refuse(
                socket,
                "53300",
                "too many connections: serve.pg_max_connections are open",
            ));
            continue;
        };
        let session = Arc::new(Session::new(peer.to_string()));
        let handlers = Arc::new(Handlers {
            backend: Arc::new(Backend {
                runtime: runtime.clone(),
                parser: parser.clone(),
                session: session.clone(),
            }),
            runtime: runtime.clone(),
            session: session.clone(),
        });
        let tls = tls.clone();
        tokio::spawn(async move {
            let _permit = permit;
            metrics.coincast_pg_connections.inc();
            let ended = watch(
                pgwire::tokio::process_socket(socket, tls, handlers),
                &session,
                limits,
            )
            .await;
            if let Some(reason) = ended {
                metrics
                    .coincast_pg_connections_closed_total
                    .with_label_values(&[reason])
                    .inc();
            }
            metrics.coincast_pg_connections.dec();
        });
    }
}

/// How long a connection may take to authenticate, and to stay without a query.
#[derive(Clone, Copy)]
struct Limits {
    startup: Duration,
    idle: Duration,
}

/// Drives a connection until it ends, or until a limit closes it (dropping it closes the socket):
/// which limit, if one did.
async fn watch(
    connection: impl std::future::Future<Output = std::io::Result<()>>,
    session: &Session,
    limits: Limits,
) -> Option<&'static str> {
    tokio::pin!(connection);
    let opened = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            ended = &mut connection => {
                if let Err(e) = ended {
                    tracing::debug!("pg: connection ended: {e}");
                }
                return None;
            }
            _ = tick.tick() => {
                if !session.authenticated() && opened.elapsed() >= limits.startup {
                    return Some("startup_timeout");
                }
                if session.authenticated() && session.idle_for() >= limits.idle {
                    return Some("idle_timeout");
                }
            }
        }
    }
}

/// Answers a connection beyond the cap with a FatalError and closes it.
async fn refuse(mut socket: tokio::net::TcpStream, code: &str, message: &str) {
    use tokio::io::AsyncWriteExt;
    let mut body = Vec::new();
    for (field, value) in [
        (b'S', "FATAL"),
        (b'V', "FATAL"),
        (b'C', code),
        (b'M', message),
    ] {
        body.push(field);
        body.extend_from_slice(value.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut frame = vec![b'E'];
    frame.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
    frame.extend_from_slice(&body);
    let _ = tokio::time::timeout(Duration::from_secs(1), socket.write_all(&frame)).await;
}

/// The TLS side of the wire, from the server's certificate (None: plain only).
fn tls_acceptor(
    serve: &crate::config::ServeSettings,
) -> std::io::Result<Option<pgwire::tokio::TlsAcceptor>> {
    let (cert, key) = (serve.tls_cert.trim(), serve.tls_key.trim());
    if cert.is_empty() || key.is_empty() {
        return Ok(None);
    }
    let config = crate::serve::tls::config(std::path::Path::new(cert), std::path::Path::new(key))
        .map_err(std::io::Error::other)?;
    let mut config = (*config).clone();
    // PostgreSQL 17's direct TLS names its protocol; older clients negotiate without ALPN.
    config.alpn_protocols = vec![b"postgresql".to_vec()];
    Ok(Some(pgwire::tokio::TlsAcceptor::from(Arc::new(config))))
}

/// One connection: who it is once authenticated, and when it last queried.
struct Session {
    peer: String,
    who: OnceLock<String>,
    last_active: Mutex<Instant>,
    /// Queries running now (a long query is not idleness).
    running: AtomicUsize,
}

impl Session {
    fn new(peer: String) -> Self {
        Self {
            peer,
            who: OnceLock::new(),
            last_active: Mutex::new(Instant::now()),
            running: AtomicUsize::new(0),
        }
    }

    fn authenticated(&self) -> bool {
        self.who.get().is_some()
    }

    fn name(&self) -> String {
        self.who
            .get()
            .cloned()
            .unwrap_or_else(|| "unidentified".into())
    }

    fn idle_for(&self) -> Duration {
        if self.running.load(Ordering::SeqCst) > 0 {
            return Duration::ZERO;
        }
        self.last_active
            .lock()
            .map(|t| t.elapsed())
            .unwrap_or_default()
    }

    fn touch(&self) {
        if let Ok(mut t) = self.last_active.lock() {
            *t = Instant::now();
        }
    }
}

struct Handlers {
    backend: Arc<Backend>,
    runtime: Arc<Runtime>,
    session: Arc<Session>,
}

impl PgWireServerHandlers for Handlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.backend.clone()
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.backend.clone()
    }

    fn startup_handler(&self) -> Arc<impl pgwire::api::auth::StartupHandler> {
        let mut parameters = DefaultServerParameterProvider::default();
        parameters.server_version = SERVER_VERSION.into();
        parameters.default_transaction_read_only = true;
        parameters.is_superuser = false;
        let guarded = self.runtime.access().tokens().guards(Scope::Sql);
        Arc::new(Startup {
            check: if guarded {
                Check::Password(Box::new(CleartextPasswordAuthStartupHandler::new(
                    TokenCheck {
                        runtime: self.runtime.clone(),
                        session: self.session.clone(),
                    },
                    parameters,
                )))
            } else {
                Check::Open(OpenStartup)
            },
            session: self.session.clone(),
            require_tls: self.runtime.settings().serve.pg_require_tls,
            metrics: self.runtime.metrics().clone(),
        })
    }
}

/// The start-up: TLS when required, then a token of the sql scope as the password when tokens
/// guard SQL (none otherwise: loopback only, as on HTTP).
struct Startup {
    check: Check,
    session: Arc<Session>,
    require_tls: bool,
    metrics: Arc<crate::runtime::Metrics>,
}

enum Check {
    Password(Box<CleartextPasswordAuthStartupHandler<TokenCheck, DefaultServerParameterProvider>>),
    Open(OpenStartup),
}

#[async_trait]
impl pgwire::api::auth::StartupHandler for Startup {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: pgwire::messages::PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo
            + futures_util::Sink<pgwire::messages::PgWireBackendMessage>
            + Unpin
            + Send
            + Sync,
        C::Error: Debug,
        PgWireError: From<<C as futures_util::Sink<pgwire::messages::PgWireBackendMessage>>::Error>,
    {
        if self.require_tls && !client.is_secure() {
            self.metrics
                .coincast_pg_connections_closed_total
                .with_label_values(&["tls_required"])
                .inc();
            return Err(PgWireError::UserError(Box::new(ErrorInfo::new(
                "FATAL".into(),
                "28000".into(),
                "this server requires TLS (serve.pg_require_tls): connect with sslmode=require or verify-full".into(),
            ))));
        }
        match &self.check {
            Check::Password(h) => h.on_startup(client, message).await?,
            Check::Open(h) => {
                h.on_startup(client, message).await?;
                if matches!(
                    client.state(),
                    pgwire::api::PgWireConnectionState::ReadyForQuery
                ) {
                    let _ = self.session.who.set("anonymous".into());
                }
            }
        }
        self.session.touch();
        Ok(())
    }
}

/// No password (SQL open on a loopback bind, as on HTTP).
struct OpenStartup;

impl NoopStartupHandler for OpenStartup {}

/// A token of the sql scope or above as the password (any user name); the session learns whose.
struct TokenCheck {
    runtime: Arc<Runtime>,
    session: Arc<Session>,
}

impl Debug for TokenCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCheck")
            .field("session", &self.session)
            .finish()
    }
}

impl Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("peer", &self.peer).finish()
    }
}

#[async_trait]
impl AuthSource for TokenCheck {
    async fn get_password(&self, login: &LoginInfo) -> PgWireResult<Password> {
        // Never asked: `verify_password` compares digests itself.
        Err(PgWireError::InvalidPassword(
            login.user().unwrap_or_default().to_owned(),
        ))
    }

    async fn verify_password(
        &self,
        login: &LoginInfo,
        presented: &[u8],
    ) -> PgWireResult<Option<()>> {
        let refused = || PgWireError::InvalidPassword(login.user().unwrap_or_default().to_owned());
        let presented = std::str::from_utf8(presented).map_err(|_| refused())?;
        let access = self.runtime.access();
        let who = access
            .tokens()
            .identify(presented, chrono::Utc::now())
            .map_err(|_| refused())?;
        if who.scope < Scope::Sql {
            return Err(refused());
        }
        let _ = self.session.who.set(who.name);
        Ok(None)
    }
}

struct Backend {
    runtime: Arc<Runtime>,
    parser: Arc<NoopQueryParser>,
    session: Arc<Session>,
}

impl Backend {
    /// Answers `sql` (with text parameters): a no-op for session statements, else a query in
    /// the sandbox, off the executor.
    async fn answer(
        &self,
        sql: &str,
        params: Vec<Option<String>>,
        format: &Format,
    ) -> PgWireResult<Response> {
        if let Some(tag) = catalog::no_op(sql) {
            return Ok(Response::Execution(Tag::new(tag)));
        }
        if catalog::reads_absent_catalog(sql) {
            return Ok(Response::Query(query_response(no_rows(), format)?));
        }
        let result = self.run(sql, params).await?;
        Ok(Response::Query(query_response(result, format)?))
    }

    async fn run(&self, sql: &str, params: Vec<Option<String>>) -> PgWireResult<QueryResult> {
        self.on_the_writer()?;
        let statement = AuditEvent::truncated(sql);
        let started = Instant::now();
        self.session.running.fetch_add(1, Ordering::SeqCst);
        let rewritten = catalog::rewrite(sql);
        let runtime = self.runtime.clone();
        let max_rows = runtime.settings().serve.pg_max_rows;
        let result = tokio::task::spawn_blocking(move || {
            runtime.queries().run_with(&rewritten, &params, max_rows)
        })
        .await
        .map_err(|e| user_error("XX000", format!("the query task failed: {e}")))
        .and_then(|r| r.map_err(query_error));
        self.session.running.fetch_sub(1, Ordering::SeqCst);
        self.session.touch();
        self.runtime.audit(AuditEvent {
            at: chrono::Utc::now(),
            token: self.session.name(),
            channel: Channel::Postgres,
            action: "sql".into(),
            statement: Some(statement),
            outcome: match &result {
                Ok(_) => "ok".into(),
                Err(PgWireError::UserError(info)) => info.code.clone(),
                Err(_) => "error".into(),
            },
            duration_ms: started.elapsed().as_secs_f64() * 1000.0,
            client: Some(self.session.peer.clone()),
        });
        result
    }

    /// SQL reads the published copy, or on a replica the lake; a replica without a shared lake
    /// names the writer.
    fn on_the_writer(&self) -> PgWireResult<()> {
        match self.runtime.sql_elsewhere() {
            Some(message) => Err(user_error("0A000", message)),
            None => Ok(()),
        }
    }

    /// The columns of a statement, from DuckDB's binder (nothing runs).
    async fn describe(&self, sql: &str, format: &Format) -> PgWireResult<Vec<FieldInfo>> {
        if catalog::no_op(sql).is_some() {
            return Ok(Vec::new());
        }
        if catalog::reads_absent_catalog(sql) {
            return Ok(fields(&no_rows().columns, format));
        }
        self.on_the_writer()?;
        let sql = catalog::rewrite(sql);
        let runtime = self.runtime.clone();
        let columns = tokio::task::spawn_blocking(move || runtime.queries().describe(&sql))
            .await
            .map_err(|e| user_error("XX000", format!("the describe task failed: {e}")))?
            .map_err(query_error)?;
        Ok(fields(&columns, format))
    }
}

#[async_trait]
impl SimpleQueryHandler for Backend {
    async fn do_query<C>(&self, _client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        Ok(vec![
            self.answer(query, Vec::new(), &Format::UnifiedText).await?,
        ])
    }
}

#[async_trait]
impl ExtendedQueryHandler for Backend {
    type Statement = String;
    type QueryParser = NoopQueryParser;

    fn query_parser(&self) -> Arc<Self::QueryParser> {
        self.parser.clone()
    }

    async fn do_query<C>(
        &self,
        _client: &mut C,
        portal: &Portal<Self::Statement>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let params = portal_params(portal)?;
        self.answer(
            &portal.statement.statement,
            params,
            &portal.result_column_format,
        )
        .await
    }

    async fn do_describe_statement<C>(
        &self,
        _client: &mut C,
        statement: &StoredStatement<Self::Statement>,
    ) -> PgWireResult<DescribeStatementResponse>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let types: Vec<Type> = statement
            .parameter_types
            .iter()
            .map(|t| t.clone().unwrap_or(Type::TEXT))
            .collect();
        let fields = self
            .describe(&statement.statement, &Format::UnifiedText)
            .await?;
        Ok(DescribeStatementResponse::new(types, fields))
    }

    async fn do_describe_portal<C>(
        &self,
        _client: &mut C,
        portal: &Portal<Self::Statement>,
    ) -> PgWireResult<DescribePortalResponse>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let fields = self
            .describe(&portal.statement.statement, &portal.result_column_format)
            .await?;
        Ok(DescribePortalResponse::new(fields))
    }
}

/// A portal's parameters as text: text-format ones as sent, binary ones decoded by type.
fn portal_params(portal: &Portal<String>) -> PgWireResult<Vec<Option<String>>> {
    (0..portal.parameter_len())
        .map(|i| {
            let declared = portal
                .statement
                .parameter_types
                .get(i)
                .cloned()
                .flatten()
                .unwrap_or(Type::TEXT);
            if portal.parameter_format.is_text(i) {
                return Ok(portal.parameters[i]
                    .as_ref()
                    .map(|b| String::from_utf8_lossy(b).into_owned()));
            }
            let text = match declared {
                Type::INT2 => portal
                    .parameter::<i16>(i, &declared)?
                    .map(|v| v.to_string()),
                Type::INT4 => portal
                    .parameter::<i32>(i, &declared)?
                    .map(|v| v.to_string()),
                Type::INT8 => portal
                    .parameter::<i64>(i, &declared)?
                    .map(|v| v.to_string()),
                Type::FLOAT4 => portal
                    .parameter::<f32>(i, &declared)?
                    .map(|v| v.to_string()),
                Type::FLOAT8 => portal
                    .parameter::<f64>(i, &declared)?
                    .map(|v| v.to_string()),
                Type::BOOL => portal
                    .parameter::<bool>(i, &declared)?
                    .map(|v| v.to_string()),
                _ => portal.parameter::<String>(i, &Type::TEXT)?,
            };
            Ok(text)
        })
        .collect()
}

/// An answer with one text column and no rows.
fn no_rows() -> QueryResult {
    QueryResult {
        columns: vec![crate::query::Column {
            name: "none".into(),
            type_name: "VARCHAR".into(),
        }],
        rows: Vec::new(),
        truncated: false,
        limit: 0,
        elapsed_ms: 0.0,
        published: String::new(),
    }
}

/// The Postgres type a column goes out as.
fn pg_type(duckdb_type: &str) -> Type {
    match duckdb_type {
        "BOOLEAN" => Type::BOOL,
        "TINYINT" | "SMALLINT" | "INTEGER" | "BIGINT" | "UTINYINT" | "USMALLINT" | "UINTEGER" => {
            Type::INT8
        }
        "FLOAT" | "DOUBLE" => Type::FLOAT8,
        _ => Type::TEXT,
    }
}

fn fields(columns: &[crate::query::Column], format: &Format) -> Vec<FieldInfo> {
    columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            FieldInfo::new(
                c.name.clone(),
                None,
                None,
                pg_type(&c.type_name),
                format.format_for(i),
            )
        })
        .collect()
}

fn query_response(result: QueryResult, format: &Format) -> PgWireResult<QueryResponse> {
    let schema = Arc::new(fields(&result.columns, format));
    let mut rows = Vec::with_capacity(result.rows.len());
    let mut encoder = DataRowEncoder::new(schema.clone());
    for row in result.rows {
        for (value, field) in row.iter().zip(schema.iter()) {
            encode(&mut encoder, value, field.datatype())?;
        }
        rows.push(Ok(encoder.take_row()));
    }
    Ok(QueryResponse::new(schema, stream::iter(rows)))
}

fn encode(encoder: &mut DataRowEncoder, value: &Value, pg: &Type) -> PgWireResult<()> {
    match (value, pg) {
        (Value::Null, _) => encoder.encode_field(&None::<String>),
        (Value::Bool(b), &Type::BOOL) => encoder.encode_field(b),
        (Value::Number(n), &Type::INT8) => match n.as_i64() {
            Some(v) => encoder.encode_field(&v),
            None => encoder.encode_field(&n.to_string()),
        },
        (Value::Number(n), &Type::FLOAT8) => match n.as_f64() {
            Some(v) => encoder.encode_field(&v),
            None => encoder.encode_field(&n.to_string()),
        },
        (Value::String(s), _) => encoder.encode_field(s),
        (other, _) => encoder.encode_field(&other.to_string()),
    }
}

fn user_error(code: &str, message: String) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".to_owned(),
        code.to_owned(),
        message,
    )))
}

/// The sandbox's refusals with the SQLSTATE a Postgres client knows.
fn query_error(e: QueryError) -> PgWireError {
    let code = match &e {
        QueryError::BadSql(_) => "42601",
        QueryError::Forbidden(_) => "42501",
        QueryError::Timeout(_) => "57014",
        QueryError::Unavailable(_) => "55000",
        QueryError::Sandbox(_) | QueryError::Sql(_) => "XX000",
    };
    user_error(code, e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_go_out_typed_or_as_text() {
        assert_eq!(pg_type("BIGINT"), Type::INT8);
        assert_eq!(pg_type("DOUBLE"), Type::FLOAT8);
        assert_eq!(pg_type("BOOLEAN"), Type::BOOL);
        assert_eq!(pg_type("TIMESTAMP WITH TIME ZONE"), Type::TEXT);
        assert_eq!(pg_type("DECIMAL(18,3)"), Type::TEXT);
    }
}
