//! The appliance at run time, apart from HTTP: the pipeline worker and its schedules, the served
//! snapshot and its one publisher, the prediction log and the Prometheus registry. `serve` reads
//! and drives it through `Runtime`; nothing here knows HTTP or imports the HTTP layer.
//!
//! Invariants:
//! - only the pipeline worker runs pipeline tasks, one run at a time, on the connection that
//!   opened the store;
//! - every snapshot is published through `Publisher`, and a load is never published over one
//!   that began after it;
//! - registry changes (`promote`, `rollback`: from the API and the CLI alike) commit on the
//!   runtime's own connection (never behind a run) and are published before the call returns,
//!   to the serving publication too;
//! - a replica (`Runtime::replica`) has no database of the writer's: it serves the newest
//!   serving publication it loaded (`replica.rs`) and runs no job.

pub mod answer;
mod error;
mod metrics;
mod prediction_log;
mod publisher;
mod read_pool;
mod replica;
mod schedule;
mod snapshot;
mod worker;

use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwapOption;
use duckdb::Connection;

pub use error::{JobError, RuntimeError};
pub use metrics::Metrics;
pub use prediction_log::{PredictionLog, PredictionRecord};
pub use publisher::{Publication, Publisher, Ticket};
pub use replica::{Following, ReplicaHandle};
pub use schedule::Job;
pub use snapshot::{PublicationInfo, ServedBy, ServedCoin, ServingModel, Snapshot};
pub use worker::Worker;

use crate::config::Settings;
use crate::model::lstm::resolve_device;
use crate::model::registry;
use crate::model::served::ServedModel;
use worker::Command;

/// Which part a server plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Holds the database, runs the pipeline and publishes.
    Writer,
    /// Serves the writer's serving publication; writes nothing of the writer's.
    Replica,
}

/// A change of champion: who serves now, and who served before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChampionChange {
    pub champion: String,
    pub previous: Option<String>,
    /// The serving publication that carries the change to replicas (None: `publish.url` is not
    /// set, or publishing failed, which is logged).
    pub published: Option<u64>,
}

/// What the HTTP layer holds of the running appliance.
pub struct Runtime {
    settings: Settings,
    metrics: Arc<Metrics>,
    publisher: Publisher,
    role: Role,
    /// The writer's serving publication (`publish.url`), when configured.
    serving: Option<crate::publish::ServingWriter>,
    /// A replica's view of the publications it follows.
    following: Option<Following>,
    /// Where manual runs are queued (None: no worker, e.g. in tests of the API alone).
    jobs: Option<Mutex<Sender<Command>>>,
    /// Where served predictions go (None: not logged).
    prediction_log: Option<PredictionLog>,
    /// A connection of the API's own, for promotions and page reads that must not wait for a
    /// pipeline run (DuckDB serves several connections of one process).
    db: Option<Mutex<Connection>>,
    /// The pages' connections (`serve.page_connections`), apart from the API's; a replica
    /// swaps them with each publication it loads.
    pages: ArcSwapOption<read_pool::ReadPool>,
    /// Analysts' SQL, on the newest published copy.
    queries: crate::query::Queries,
    /// The tokens in force and their rate limits.
    access: crate::access::Access,
    /// Where admin actions and SQL statements are recorded (None: nowhere, in tests of the API).
    audit: Option<crate::access::AuditLog>,
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
        // The file was checked before the server started (a bad one exits 2); one spoiled since
        // leaves the settings' tokens, and says so.
        let access = crate::access::Access::load(serve).unwrap_or_else(|e| {
            tracing::error!("{}", crate::failure::report(&e));
            crate::access::Access::settings_only(serve, e.to_string())
        });
        Self {
            access,
            audit: None,
            publisher: Publisher::new(snapshot, metrics.clone()),
            settings,
            metrics,
            role: Role::Writer,
            serving: None,
            following: None,
            jobs: None,
            prediction_log: None,
            db: None,
            pages: ArcSwapOption::empty(),
            queries,
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The one owner of the served snapshot (reloads, versions, the served version's watch).
    pub fn publisher(&self) -> &Publisher {
        &self.publisher
    }

    /// Analysts' SQL on the published copy.
    pub fn queries(&self) -> &crate::query::Queries {
        &self.queries
    }

    /// The tokens in force (`serve.tokens_file` and the three settings) and their rate limits.
    pub fn access(&self) -> &crate::access::Access {
        &self.access
    }

    /// Records what someone did in the audit trail (never waits).
    pub fn audit(&self, event: crate::access::AuditEvent) {
        if let Some(log) = &self.audit {
            log.record(event);
        }
    }

    /// The audit trail's writer, if this runtime has one.
    pub fn audit_log(&self) -> Option<&crate::access::AuditLog> {
        self.audit.as_ref()
    }

    /// Records admin actions and SQL statements through `log`.
    pub fn with_audit(mut self, log: crate::access::AuditLog) -> Self {
        self.audit = Some(log);
        self
    }

    /// Sets the access gauges (the tokens file, the audit trail's drops) for a scrape.
    pub fn publish_access_gauges(&self) {
        let m = &self.metrics;
        m.coincast_tokens_file_ok
            .set(if self.access.problem().is_some() {
                0.0
            } else {
                1.0
            });
        let (_, refused) = self.access.reloads();
        let counted = m.coincast_tokens_file_rejections_total.get();
        m.coincast_tokens_file_rejections_total
            .inc_by(refused.saturating_sub(counted));
        if let Some(log) = &self.audit {
            let counted = m.coincast_audit_events_dropped_total.get();
            m.coincast_audit_events_dropped_total
                .inc_by(log.dropped().saturating_sub(counted));
        }
    }

    /// Which part this server plays.
    pub fn role(&self) -> Role {
        self.role
    }

    /// On a replica, why `what` is not done here: it goes to the writer (`serve.writer_url`).
    pub fn writer_only(&self, what: &str) -> Option<String> {
        if self.role == Role::Writer {
            return None;
        }
        let writer = self.settings.serve.writer_url.trim();
        let at = if writer.is_empty() {
            "the writer (serve.writer_url is not set on this replica)".to_string()
        } else {
            format!("the writer at {writer}")
        };
        Some(format!(
            "this server is a replica: it serves the writer's publication and changes nothing; send {what} to {at}"
        ))
    }

    /// Why SQL is not answered here (None: it is): a replica answers it from the lake when the
    /// lake's catalog is shared (PostgreSQL), else it goes to the writer.
    pub fn sql_elsewhere(&self) -> Option<String> {
        if self.sql_reads_lake() {
            return None;
        }
        self.writer_only("SQL")
    }

    /// A replica whose lake has a catalog every machine reaches answers SQL from the lake.
    fn sql_reads_lake(&self) -> bool {
        self.role == Role::Replica
            && self.settings.lake.enabled
            && crate::lake::Location::of(&self.settings).catalog_is_shared()
    }

    /// A replica's state of following (None on the writer).
    pub fn following(&self) -> Option<&Following> {
        self.following.as_ref()
    }

    /// Puts out a serving publication from `conn` (the live database), when `publish.url` is
    /// set: its version; a failure is logged and counted (replicas keep serving the one before).
    pub fn publish_serving(&self, conn: &Connection) -> Option<u64> {
        let serving = self.serving.as_ref()?;
        match self.publish(conn) {
            Ok(published) => published.map(|p| p.version),
            Err(e) => {
                tracing::warn!(
                    "the serving publication at {} failed: {}",
                    serving.url(),
                    crate::failure::report(&e)
                );
                None
            }
        }
    }

    /// Puts out a serving publication from `conn` (the live database) at `publish.url`: what it
    /// wrote, or None when no URL is set. Counted in the metrics either way.
    pub fn publish(
        &self,
        conn: &Connection,
    ) -> Result<Option<crate::publish::Published>, RuntimeError> {
        let Some(serving) = &self.serving else {
            return Ok(None);
        };
        let m = &self.metrics;
        // The columns the served models read; the rest of `features` stays with the writer.
        let snapshot = self.snapshot();
        let mut features: Vec<String> = Vec::new();
        for model in [&snapshot.champion, &snapshot.floor].into_iter().flatten() {
            features.extend(model.series_features.iter().cloned());
        }
        let p = serving.publish(conn, &features).inspect_err(|_| {
            m.coincast_serving_publication_failures_total
                .with_label_values(&["publish"])
                .inc();
        })?;
        let now = chrono::Utc::now().timestamp() as f64;
        m.coincast_serving_publication_version.set(p.version as f64);
        m.coincast_serving_publication_bytes.set(p.bytes as f64);
        m.coincast_serving_publication_timestamp_seconds.set(now);
        m.coincast_serving_publication_seconds.observe(p.seconds);
        m.coincast_serving_publication_last_success_timestamp_seconds
            .set(now);
        tracing::info!(
            version = p.version,
            bytes = p.bytes,
            seconds = p.seconds,
            "serving publication put out at {}",
            serving.url()
        );
        Ok(Some(p))
    }

    /// Takes the replicas' served forecasts into `predictions` on `conn` (the writer's).
    pub fn take_in_replica_segments(&self, conn: &Connection) {
        let Some(serving) = &self.serving else {
            return;
        };
        match serving.take_in(conn) {
            Ok(intake) if intake.segments + intake.already_taken > 0 => {
                self.metrics
                    .coincast_replica_segments_taken_total
                    .inc_by(intake.segments as u64);
                tracing::info!(
                    segments = intake.segments,
                    requests = intake.requests,
                    already_taken = intake.already_taken,
                    "replicas' served forecasts taken in"
                );
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(
                "replicas' served forecasts wait at {}: {}",
                serving.url(),
                crate::failure::report(&e)
            ),
        }
    }

    /// The writer's runtime for one command on an open store (`coincast models promote`, ...):
    /// the served snapshot, a connection of its own and the serving publication; no worker, no
    /// prediction log. What it changes is published as the server would.
    pub fn for_command(
        store: &crate::store::Store,
        settings: Settings,
    ) -> Result<Self, RuntimeError> {
        let metrics = Arc::new(Metrics::new().map_err(RuntimeError::Metrics)?);
        let snapshot = Snapshot::load(store.conn(), &settings);
        let serving = crate::publish::ServingWriter::of(&settings)?;
        let mut runtime =
            Runtime::new(snapshot, settings, metrics).with_db(store.conn().try_clone()?);
        runtime.serving = serving;
        Ok(runtime)
    }

    /// Publishes to `publish.url` from now on (the writer).
    fn with_serving(mut self, serving: crate::publish::ServingWriter) -> Self {
        self.serving = Some(serving);
        self
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
            Ok(pool) => self.pages = ArcSwapOption::from_pointee(pool),
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
        self.pages
            .load_full()
            .ok_or(RuntimeError::NoDatabase)?
            .read(f)
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

    /// Makes `model_id` the champion (`check`: whether a gate failure may be overridden). A
    /// model that cannot be loaded to serve is refused before it replaces one that can. The
    /// change serves here, and is published to `publish.url`, when this returns (blocking).
    pub fn promote(
        &self,
        model_id: &str,
        check: registry::GateCheck,
    ) -> Result<ChampionChange, RuntimeError> {
        let data_dir = self.settings.data_dir.clone();
        let ((champion, previous), published) = self.change_registry(|conn| {
            let previous = registry::champion(conn)?.map(|c| c.model_id);
            let row = registry::get_servable(conn, model_id)?;
            ServedModel::load(&row.artifact_dir(&data_dir), resolve_device("auto")?)?;
            registry::promote(conn, model_id, check)?;
            Ok((model_id.to_string(), previous))
        })?;
        Ok(ChampionChange {
            champion,
            previous,
            published,
        })
    }

    /// Restores the previous champion (`check` as for `promote`); served and published when
    /// this returns (blocking).
    pub fn rollback(&self, check: registry::GateCheck) -> Result<ChampionChange, RuntimeError> {
        let ((champion, previous), published) = self.change_registry(|conn| {
            let previous = registry::champion(conn)?.map(|c| c.model_id);
            Ok((registry::rollback(conn, check)?, previous))
        })?;
        Ok(ChampionChange {
            champion,
            previous,
            published,
        })
    }

    /// Commits a registry change (`f`) on the API's connection, then publishes a snapshot read
    /// after the commit, so the change serves when this returns (blocking); with the serving
    /// publication's version, when one was put out.
    fn change_registry<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, crate::model::ModelError>,
    ) -> Result<(T, Option<u64>), RuntimeError> {
        let db = self.db.as_ref().ok_or(RuntimeError::NoDatabase)?;
        let conn = db
            .lock()
            .map_err(|_| RuntimeError::Poisoned("the API's connection"))?;
        let out = f(&conn)?;
        self.publisher.reload(&conn, &self.settings);
        let published = self.publish_serving(&conn);
        Ok((out, published))
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
