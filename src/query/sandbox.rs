//! A DuckDB instance of its own over one published copy (opened read-only) or over the lake
//! (attached read-only to an in-memory instance), locked down before any user SQL reaches it,
//! and DuckDB's own parser in front of it.
//!
//! The C API is used where the crate has no word for it: opening with a configuration that holds
//! `access_mode=READ_ONLY` from the first moment, and a second connection that extracts and
//! prepares each statement to read its type without running anything.

use std::ffi::{CStr, CString};
use std::os::raw::c_char;
use std::path::Path;
use std::ptr;

use duckdb::ffi;

use super::QueryError;
use crate::config::Settings;

/// Statement types a query may have: a single read.
const READS: &[ffi::duckdb_statement_type] = &[
    ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_SELECT,
    ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_EXPLAIN,
];

/// An open sandbox: the database, the connection queries run on, the parser's connection.
pub struct Sandbox {
    // Dropped in this order: the query connection, the parser's, then the database.
    conn: Option<duckdb::Connection>,
    parser: ffi::duckdb_connection,
    db: ffi::duckdb_database,
}

// The raw handles are owned here alone and used under the caller's lock (DuckDB's C API is
// thread-safe per connection when calls do not overlap).
unsafe impl Send for Sandbox {}

/// The locks applied after opening, in this order (the order; the lock comes last).
pub struct Limits {
    pub memory_limit: String,
    pub threads: usize,
}

impl Sandbox {
    /// Opens `path` read-only in a new DuckDB instance and locks it down.
    pub fn open(path: &Path, limits: &Limits) -> Result<Self, QueryError> {
        let db = open_read_only(path)?;
        Self::lock_down(db, limits, |_| Ok(Vec::new()))
    }

    /// A new in-memory DuckDB instance with the lake attached read-only and the views of
    /// `sql/query/lake_views.sql`, locked down with only the lake's data path open to reads.
    /// Refused while `lake.catalog` holds a password: a query would read it in
    /// `duckdb_databases()`.
    pub fn open_lake(settings: &Settings, limits: &Limits) -> Result<Self, QueryError> {
        let location = crate::lake::Location::of(settings);
        if location.catalog_holds_password() {
            return Err(QueryError::Unavailable(
                "lake.catalog holds a password, which any query could read in duckdb_databases(): \
                 give it in PGPASSWORD or ~/.pgpass instead (libpq reads both), and SQL on this \
                 replica reads the lake"
                    .into(),
            ));
        }
        let db = open_in_memory()?;
        Self::lock_down(db, limits, |conn| {
            let data_path = crate::lake::attach_read_only(conn, settings).map_err(|e| {
                QueryError::Unavailable(format!(
                    "the lake cannot be read: {}",
                    crate::failure::report(&e)
                ))
            })?;
            if location.on_s3() {
                conn.execute_batch(include_str!("../../sql/query/forget_env_credentials.sql"))?;
            }
            conn.execute_batch(include_str!("../../sql/query/lake_views.sql"))?;
            Ok(vec![data_path])
        })
    }

    /// Connects to `db`, lets `prepare` attach what queries read (it returns the folders they may
    /// read files from), then applies the locks, the lock itself last, and connects the parser.
    fn lock_down(
        db: ffi::duckdb_database,
        limits: &Limits,
        prepare: impl FnOnce(&duckdb::Connection) -> Result<Vec<String>, QueryError>,
    ) -> Result<Self, QueryError> {
        let mut sandbox = Self {
            conn: None,
            parser: ptr::null_mut(),
            db,
        };
        // SAFETY: `db` is open and owned by `sandbox`, which outlives the connection (field
        // order, and `Drop` closes it last).
        let conn = unsafe { duckdb::Connection::open_from_raw(db) }?;
        let readable = prepare(&conn)?;
        let allowed = readable
            .iter()
            .map(|dir| crate::lake::literal(dir))
            .collect::<Vec<_>>()
            .join(", ");
        conn.execute_batch(&format!(
            "SET allowed_directories = [{allowed}];
             SET enable_external_access = false;
             SET autoload_known_extensions = false;
             SET autoinstall_known_extensions = false;
             SET memory_limit = '{}';
             SET threads = {};
             SET lock_configuration = true;",
            limits.memory_limit.replace('\'', ""),
            limits.threads.max(1)
        ))?;
        sandbox.conn = Some(conn);
        // SAFETY: a connection to the open database, disconnected in `Drop`.
        let state = unsafe { ffi::duckdb_connect(db, &mut sandbox.parser) };
        if state != ffi::duckdb_state_DuckDBSuccess {
            return Err(QueryError::Sandbox("cannot connect the parser".into()));
        }
        Ok(sandbox)
    }

    /// The connection queries run on.
    pub fn conn(&self) -> Result<&duckdb::Connection, QueryError> {
        self.conn
            .as_ref()
            .ok_or_else(|| QueryError::Sandbox("the sandbox is closed".into()))
    }

    /// Refuses anything but exactly one read statement, by DuckDB's parser and binder: the text
    /// is split into statements and each is prepared (bound, not run) to read its type.
    pub fn check_single_read(&self, sql: &str) -> Result<(), QueryError> {
        self.with_single_read(sql, |_| ())
    }

    /// The result columns of a read statement (names and DuckDB types), without running it.
    pub fn describe(&self, sql: &str) -> Result<Vec<super::Column>, QueryError> {
        self.with_single_read(sql, |prepared| {
            // SAFETY: `prepared` is a successfully prepared statement; each name is freed.
            let count = unsafe { ffi::duckdb_prepared_statement_column_count(prepared) };
            (0..count)
                .map(|i| unsafe {
                    let raw = ffi::duckdb_prepared_statement_column_name(prepared, i);
                    let name = text_of(raw).unwrap_or_else(|| format!("column{i}"));
                    if !raw.is_null() {
                        ffi::duckdb_free(raw as *mut std::ffi::c_void);
                    }
                    let kind = ffi::duckdb_prepared_statement_column_type(prepared, i);
                    super::Column {
                        name,
                        type_name: type_name(kind).to_string(),
                    }
                })
                .collect()
        })
    }

    /// Runs `f` on the prepared statement when `sql` is exactly one read statement.
    fn with_single_read<T>(
        &self,
        sql: &str,
        f: impl FnOnce(ffi::duckdb_prepared_statement) -> T,
    ) -> Result<T, QueryError> {
        let text = CString::new(sql)
            .map_err(|_| QueryError::BadSql("the query holds a NUL character".into()))?;
        let mut extracted: ffi::duckdb_extracted_statements = ptr::null_mut();
        // SAFETY: `parser` is connected; `extracted` is destroyed below on every path.
        let count =
            unsafe { ffi::duckdb_extract_statements(self.parser, text.as_ptr(), &mut extracted) };
        let result = self.check_extracted(extracted, count, f);
        // SAFETY: created by duckdb_extract_statements above (also on a parse error).
        unsafe { ffi::duckdb_destroy_extracted(&mut extracted) };
        result
    }

    fn check_extracted<T>(
        &self,
        extracted: ffi::duckdb_extracted_statements,
        count: ffi::idx_t,
        f: impl FnOnce(ffi::duckdb_prepared_statement) -> T,
    ) -> Result<T, QueryError> {
        if count == 0 {
            // SAFETY: the error text belongs to `extracted`.
            let message = unsafe { text_of(ffi::duckdb_extract_statements_error(extracted)) };
            return Err(QueryError::BadSql(
                message.unwrap_or_else(|| "no statement in the query".into()),
            ));
        }
        if count > 1 {
            return Err(QueryError::Forbidden(format!(
                "one statement per query: this one has {count}"
            )));
        }
        let mut prepared: ffi::duckdb_prepared_statement = ptr::null_mut();
        // SAFETY: index 0 exists; `prepared` is destroyed below.
        let state = unsafe {
            ffi::duckdb_prepare_extracted_statement(self.parser, extracted, 0, &mut prepared)
        };
        let outcome = if state == ffi::duckdb_state_DuckDBSuccess {
            // SAFETY: a successfully prepared statement.
            let kind = unsafe { ffi::duckdb_prepared_statement_type(prepared) };
            if READS.contains(&kind) {
                Ok(f(prepared))
            } else {
                Err(QueryError::Forbidden(format!(
                    "only a read is allowed (SELECT, WITH, DESCRIBE, SHOW, SUMMARIZE, EXPLAIN); this is {}",
                    statement_name(kind)
                )))
            }
        } else {
            // SAFETY: the error text belongs to `prepared`.
            let message = unsafe { text_of(ffi::duckdb_prepare_error(prepared)) };
            Err(classify_prepare_error(
                message.unwrap_or_else(|| "the query cannot be prepared".into()),
            ))
        };
        // SAFETY: created by duckdb_prepare_extracted_statement (also on failure).
        unsafe { ffi::duckdb_destroy_prepare(&mut prepared) };
        outcome
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.conn = None;
        // SAFETY: each handle was opened by `open` and is released once, the database last.
        unsafe {
            if !self.parser.is_null() {
                ffi::duckdb_disconnect(&mut self.parser);
            }
            ffi::duckdb_close(&mut self.db);
        }
    }
}

fn open_in_memory() -> Result<ffi::duckdb_database, QueryError> {
    let mut db: ffi::duckdb_database = ptr::null_mut();
    // SAFETY: a null path opens an in-memory instance, closed in `Sandbox`'s `Drop`.
    let state = unsafe { ffi::duckdb_open(ptr::null(), &mut db) };
    if state == ffi::duckdb_state_DuckDBSuccess {
        Ok(db)
    } else {
        Err(QueryError::Sandbox(
            "cannot open an in-memory DuckDB instance".into(),
        ))
    }
}

fn open_read_only(path: &Path) -> Result<ffi::duckdb_database, QueryError> {
    let c_path = CString::new(path.display().to_string())
        .map_err(|_| QueryError::Sandbox("the published path holds a NUL character".into()))?;
    let mut config: ffi::duckdb_config = ptr::null_mut();
    let mut db: ffi::duckdb_database = ptr::null_mut();
    let mut error: *mut c_char = ptr::null_mut();
    // SAFETY: the config is created, set and destroyed here; `error` is freed with duckdb_free.
    let state = unsafe {
        if ffi::duckdb_create_config(&mut config) != ffi::duckdb_state_DuckDBSuccess {
            return Err(QueryError::Sandbox("cannot create a DuckDB config".into()));
        }
        let set = |name: &CStr, value: &CStr| {
            ffi::duckdb_set_config(config, name.as_ptr(), value.as_ptr())
                == ffi::duckdb_state_DuckDBSuccess
        };
        let configured = set(c"access_mode", c"READ_ONLY");
        let state = if configured {
            ffi::duckdb_open_ext(c_path.as_ptr(), &mut db, config, &mut error)
        } else {
            ffi::duckdb_state_DuckDBError
        };
        ffi::duckdb_destroy_config(&mut config);
        state
    };
    if state == ffi::duckdb_state_DuckDBSuccess {
        return Ok(db);
    }
    // SAFETY: `error` is null or a string DuckDB allocated for us.
    let message = unsafe {
        let text = text_of(error);
        if !error.is_null() {
            ffi::duckdb_free(error.cast());
        }
        text
    };
    Err(QueryError::Unavailable(format!(
        "the published copy {} cannot be opened: {}",
        path.display(),
        message.unwrap_or_else(|| "unknown error".into())
    )))
}

/// A C string DuckDB owns, copied.
unsafe fn text_of(ptr: *const c_char) -> Option<String> {
    if ptr.is_null() {
        return None;
    }
    // SAFETY: DuckDB returns NUL-terminated strings.
    Some(
        unsafe { CStr::from_ptr(ptr) }
            .to_string_lossy()
            .into_owned(),
    )
}

/// A statement the lock refuses at bind time (a file reader with external access off) is
/// forbidden, not bad SQL.
fn classify_prepare_error(message: String) -> QueryError {
    if super::refused_by_sandbox(&message) {
        QueryError::Forbidden(message)
    } else {
        QueryError::BadSql(message)
    }
}

/// DuckDB's name of a column type (as `query::duckdb_type_name` gives for a run's columns).
fn type_name(kind: ffi::DUCKDB_TYPE) -> &'static str {
    match kind {
        ffi::DUCKDB_TYPE_DUCKDB_TYPE_BOOLEAN => "BOOLEAN",
        ffi::DUCKDB_TYPE_DUCKDB_TYPE_TINYINT => "TINYINT",
        ffi::DUCKDB_TYPE_DUCKDB_TYPE_SMALLINT => "SMALLINT",
        ffi::DUCKDB_TYPE_DUCKDB_TYPE_INTEGER => "INTEGER",
        ffi::DUCKDB_TYPE_DUCKDB_TYPE_BIGINT => "BIGINT",
        ffi::DUCKDB_TYPE_DUCKDB_TYPE_UTINYINT => "UTINYINT",
        ffi::DUCKDB_TYPE_DUCKDB_TYPE_USMALLINT => "USMALLINT",
        ffi::DUCKDB_TYPE_DUCKDB_TYPE_UINTEGER => "UINTEGER",
        ffi::DUCKDB_TYPE_DUCKDB_TYPE_UBIGINT => "UBIGINT",
        ffi::DUCKDB_TYPE_DUCKDB_TYPE_FLOAT => "FLOAT",
        ffi::DUCKDB_TYPE_DUCKDB_TYPE_DOUBLE => "DOUBLE",
        ffi::DUCKDB_TYPE_DUCKDB_TYPE_VARCHAR => "VARCHAR",
        ffi::DUCKDB_TYPE_DUCKDB_TYPE_DATE => "DATE",
        ffi::DUCKDB_TYPE_DUCKDB_TYPE_BLOB => "BLOB",
        _ => "OTHER",
    }
}

fn statement_name(kind: ffi::duckdb_statement_type) -> &'static str {
    match kind {
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_INSERT => "an INSERT",
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_UPDATE => "an UPDATE",
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_DELETE => "a DELETE",
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_CREATE
        | ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_CREATE_FUNC => "a CREATE",
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_DROP => "a DROP",
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_ALTER => "an ALTER",
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_COPY
        | ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_COPY_DATABASE => "a COPY",
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_EXPORT => "an EXPORT",
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_ATTACH => "an ATTACH",
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_DETACH => "a DETACH",
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_LOAD => "a LOAD or INSTALL",
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_PRAGMA => "a PRAGMA",
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_SET
        | ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_VARIABLE_SET => "a SET or RESET",
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_CALL => "a CALL",
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_TRANSACTION => "a transaction statement",
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_VACUUM => "a VACUUM",
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_ANALYZE => "an ANALYZE",
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_PREPARE
        | ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_EXECUTE => "a PREPARE or EXECUTE",
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_MERGE_INTO => "a MERGE",
        _ => "not a read",
    }
}
