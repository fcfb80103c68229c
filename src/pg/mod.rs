//! The Postgres-wire endpoint (`serve.pg_bind`, off by default): psql, psycopg, Grafana and BI
//! tools query the published copy through the same sandbox as `POST /api/sql`
//! (`crate::query`). The password is the SQL token.
//!
//! Both the simple and the extended query protocols are served (pgwire). What clients send
//! besides queries is answered here: `BEGIN`, `COMMIT`, `ROLLBACK` and harmless `SET`s are
//! no-ops, and psql's catalog queries are rewritten where DuckDB's `pg_catalog` differs
//! (`catalog.rs`). Values go out typed (integers, floats, booleans) or as text.

mod catalog;

use std::fmt::Debug;
use std::sync::Arc;

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

use crate::query::{QueryError, QueryResult};
use crate::runtime::Runtime;

/// The server version told to clients: psql shapes its catalog queries by it.
const SERVER_VERSION: &str = "15.0 (coincast, DuckDB underneath)";

/// Serves until `shutdown` resolves; each connection gets a task of its own.
pub async fn serve(
    listener: TcpListener,
    runtime: Arc<Runtime>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let handlers = Arc::new(Handlers {
        backend: Arc::new(Backend {
            runtime: runtime.clone(),
            parser: Arc::new(NoopQueryParser::new()),
        }),
        token: runtime.settings().serve.sql_token().map(str::to_string),
    });
    tokio::pin!(shutdown);
    loop {
        let (socket, _) = tokio::select! {
            () = &mut shutdown => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!("pg: accepting a connection: {e}");
                    continue;
                }
            },
        };
        let handlers = handlers.clone();
        tokio::spawn(async move {
            if let Err(e) = pgwire::tokio::process_socket(socket, None, handlers).await {
                tracing::debug!("pg: connection ended: {e}");
            }
        });
    }
}

struct Handlers {
    backend: Arc<Backend>,
    /// The password clients must give (None: none asked, loopback binds only).
    token: Option<String>,
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
        Arc::new(Startup::new(self.token.clone(), parameters))
    }
}

/// The password check when a token is set, none otherwise.
enum Startup {
    Password(Box<CleartextPasswordAuthStartupHandler<Token, DefaultServerParameterProvider>>),
    Open(OpenStartup),
}

impl Startup {
    fn new(token: Option<String>, parameters: DefaultServerParameterProvider) -> Self {
        match token {
            Some(t) => Self::Password(Box::new(CleartextPasswordAuthStartupHandler::new(
                Token(t),
                parameters,
            ))),
            None => Self::Open(OpenStartup),
        }
    }
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
        match self {
            Self::Password(h) => h.on_startup(client, message).await,
            Self::Open(h) => h.on_startup(client, message).await,
        }
    }
}

/// No password (SQL open on a loopback bind, as on HTTP).
struct OpenStartup;

impl NoopStartupHandler for OpenStartup {}

/// The SQL token as the one password (any user name).
#[derive(Debug)]
struct Token(String);

#[async_trait]
impl AuthSource for Token {
    async fn get_password(&self, _login: &LoginInfo) -> PgWireResult<Password> {
        Ok(Password::new(None, self.0.as_bytes().to_vec()))
    }
}

struct Backend {
    runtime: Arc<Runtime>,
    parser: Arc<NoopQueryParser>,
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
        let sql = catalog::rewrite(sql);
        let runtime = self.runtime.clone();
        let max_rows = runtime.settings().serve.pg_max_rows;
        tokio::task::spawn_blocking(move || runtime.queries().run_with(&sql, &params, max_rows))
            .await
            .map_err(|e| user_error("XX000", format!("the query task failed: {e}")))?
            .map_err(query_error)
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
