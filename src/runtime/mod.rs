//! The appliance at run time, apart from HTTP: the pipeline worker and its schedules, the served
//! snapshot and its one publisher, the prediction log and the Prometheus registry. `serve` reads
//! and drives it through `Runtime`; nothing here knows HTTP or imports the HTTP layer.
//!
//! Invariants:
//! - only the pipeline worker runs pipeline tasks, one run at a time, on the connection that
//!   opened the store;
//! - every snapshot is published through `Publisher`, and a load is never published over one
//!   that began after it;
//! - registry changes from the API commit on the API's own connection (never behind a run) and
//!   are published before the call returns.

mod error;
mod metrics;
mod prediction_log;
mod publisher;
mod read_pool;
mod schedule;
mod snapshot;
mod worker;

use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};

use duckdb::Connection;

pub use error::{JobError, RuntimeError};
pub use metrics::Metrics;
pub use prediction_log::{PredictionLog, PredictionRecord};
pub use publisher::{Publication, Publisher, Ticket};
pub use snapshot::{ServedBy, ServedCoin, ServingModel, Snapshot};
pub use worker::{Job, Worker};

use crate::config::Settings;
use worker::Command;

/// What the HTTP layer holds of the running appliance.
pub struct Runtime {
    pub settings: Settings,
    pub metrics: Arc<Metrics>,
    pub publisher: Publisher,
    /// Where manual runs are queued (None: no worker, e.g. in tests of the API alone).
    jobs: Option<Mutex<Sender<Command>>>,
    /// Where served predictions go (None: not logged).
    prediction_log: Option<PredictionLog>,
    /// A connection of the API's own, for promotions and page reads that must not wait for a
    /// pipeline run (DuckDB serves several connections of one process).
    db: Option<Mutex<Connection>>,
    /// The pages' connections (`serve.page_connections`), apart from the API's.
    pages: Option<read_pool::ReadPool>,
    /// Analysts' SQL, on the newest published copy.
    pub queries: crate::query::Queries,
}

impl Runtime {
    /// A runtime serving `snapshot`, with no worker, no prediction log and no connection.
    pub fn new(snapshot: Snapshot, settings: Settings, metrics: Arc<Metrics>) -> Self {
        let serve = &settings.serve;
        let queries = crate::query::Queries::new(
            crate::query::Limits {
                memory_limit: serve.sql_memory_limit.clone(),
                threads: serve.sql_threads,
            },
            std::time::Duration::from_secs(serve.sql_timeout_secs),
        );
        Self {
            publisher: Publisher::new(snapshot, metrics.clone()),
            settings,
            metrics,
            jobs: None,
            prediction_log: None,
            db: None,
            pages: None,
            queries,
        }
    }

    /// Logs served predictions through `log`.
    pub fn with_prediction_log(mut self, log: PredictionLog) -> Self {
        self.prediction_log = Some(log);
        self
    }

    /// Gives the API its own connection (promotions, backups) and the pages theirs.
    pub fn with_db(mut self, conn: Connection) -> Self {
        let serve = &self.settings.serve;
        match read_pool::ReadPool::new(
            &conn,
            serve.page_connections,
            std::time::Duration::from_secs(serve.page_timeout_secs),
        ) {
            Ok(pool) => self.pages = Some(pool),
            Err(e) => tracing::warn!("the pages have no connections: {e}"),
        }
        self.db = Some(Mutex::new(conn));
        self
    }

    fn with_jobs(mut self, sender: Sender<Command>) -> Self {
        self.jobs = Some(Mutex::new(sender));
        self
    }

    /// The snapshot served now.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.publisher.current()
    }

    pub fn prediction_log(&self) -> Option<&PredictionLog> {
        self.prediction_log.as_ref()
    }

    /// Queues a run of `job` for the worker (a manual trigger).
    pub fn queue(&self, job: Job) -> Result<(), RuntimeError> {
        let jobs = self.jobs.as_ref().ok_or(RuntimeError::NoWorker)?;
        let sender = jobs
            .lock()
            .map_err(|_| RuntimeError::Poisoned("the job queue"))?;
        sender
            .send(Command::Run {
                job,
                trigger: schedule::Trigger::Api,
            })
            .map_err(|_| RuntimeError::WorkerStopped)
    }

    /// Runs a page's read `f` on one of the pages' connections, interrupted after
    /// `serve.page_timeout_secs` (blocking: call it off the executor).
    pub fn read_page<T, E>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, E>,
    ) -> Result<T, RuntimeError>
    where
        RuntimeError: From<E>,
    {
        self.pages.as_ref().ok_or(RuntimeError::NoDatabase)?.read(f)
    }

    /// Runs `f` on the API's connection (blocking: call it off the executor).
    pub fn read<T, E>(&self, f: impl FnOnce(&Connection) -> Result<T, E>) -> Result<T, RuntimeError>
    where
        RuntimeError: From<E>,
    {
        let db = self.db.as_ref().ok_or(RuntimeError::NoDatabase)?;
        let conn = db
            .lock()
            .map_err(|_| RuntimeError::Poisoned("the API's connection"))?;
        Ok(f(&conn)?)
    }

    /// Commits a registry change (`f`) on the API's connection, then publishes a snapshot read
    /// after the commit, so the change serves when this returns (blocking).
    pub fn change_registry<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, crate::model::ModelError>,
    ) -> Result<T, RuntimeError> {
        let db = self.db.as_ref().ok_or(RuntimeError::NoDatabase)?;
        let conn = db
            .lock()
            .map_err(|_| RuntimeError::Poisoned("the API's connection"))?;
        let out = f(&conn)?;
        self.publisher.reload(&conn, &self.settings);
        Ok(out)
    }

    /// Publishes the read-only copy through `conn` (the live database) and points the SQL
    /// sandbox at it (blocking).
    pub fn publish_copy(
        &self,
        conn: &Connection,
    ) -> Result<crate::store::Publication, RuntimeError> {
        let publication = crate::store::publish(conn, &self.settings.data_dir)?;
        self.metrics
            .coincast_publish_seconds
            .observe(publication.seconds);
        self.metrics
            .coincast_published_bytes
            .set(publication.database_bytes as f64);
        self.queries
            .open(&publication.database, &publication.version)?;
        Ok(publication)
    }

    /// Points the SQL sandbox at the copy already published (a restart; cheap, no copying);
    /// whether there was one to open.
    #[must_use]
    pub fn open_published_copy(&self) -> bool {
        let data_dir = &self.settings.data_dir;
        let Some(version) = crate::store::published_version(data_dir) else {
            return false;
        };
        let path = crate::store::published_database(data_dir);
        match self.queries.open(&path, &version) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(
                    "the published copy cannot be opened: {}",
                    crate::failure::report(&e)
                );
                false
            }
        }
    }

    /// A new connection to the database (a backup copies on one of its own).
    pub fn connect(&self) -> Result<Connection, RuntimeError> {
        self.read(|conn| conn.try_clone())
    }
}
