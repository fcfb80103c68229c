//! A replica at run time: a thread polls `publish.url` every `publish.poll_secs`, fetches a new
//! publication beside the one served, loads its snapshot and pages' connections, and swaps them
//! in. Nothing here writes the writer's database: served forecasts leave as segments at the
//! publication's URL (`publish::BucketSink`).
//!
//! What a replica says about itself (`Following`): the version it serves, the newest it has seen,
//! when it last read the manifest and why the last read or load failed. A writer that is down
//! costs nothing but staleness: the last publication keeps serving.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use duckdb::Connection;
use serde::Serialize;

use super::metrics::Metrics;
use super::prediction_log::PredictionLog;
use super::read_pool::ReadPool;
use super::snapshot::{PublicationInfo, Snapshot};
use super::{Role, Runtime};
use crate::config::Settings;
use crate::failure::report;
use crate::publish::{BucketSink, Fetched, Follower, PublishError};

/// What a replica knows of the publications it follows.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FollowingState {
    /// The publication served (None before the first load).
    pub serving_version: Option<u64>,
    /// The newest publication named at the URL.
    pub newest_version: Option<u64>,
    /// The last time the manifest was read.
    pub last_read_at: Option<DateTime<Utc>>,
    /// Why the last read or load failed (None once one succeeds again).
    pub problem: Option<String>,
}

/// A replica's view of `publish.url`, shared with the HTTP layer.
pub struct Following {
    pub url: String,
    state: Mutex<FollowingState>,
}

impl Following {
    pub fn state(&self) -> FollowingState {
        self.state.lock().map(|s| s.clone()).unwrap_or_default()
    }

    fn update(&self, f: impl FnOnce(&mut FollowingState)) {
        if let Ok(mut s) = self.state.lock() {
            f(&mut s);
        }
    }
}

/// Stops the replica's follower and flushes its served forecasts.
pub struct ReplicaHandle {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    runtime: Arc<Runtime>,
}

impl ReplicaHandle {
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let Some(log) = self.runtime.prediction_log() {
            log.stop();
        }
        if let Some(log) = self.runtime.audit_log() {
            log.stop();
        }
    }
}

/// The publication served now, with the connection its pages read.
struct Loaded {
    fetched: Fetched,
    _conn: Connection,
}

impl Runtime {
    /// A replica of the writer that publishes at `publish.url`: it serves nothing until its
    /// first publication is loaded (`/ready` says so), then follows the newest.
    pub fn replica(
        settings: Settings,
        metrics: Arc<Metrics>,
    ) -> Result<(Arc<Runtime>, ReplicaHandle), PublishError> {
        let follower = Follower::of(&settings)?;
        let url = follower.url().to_string();
        let sink = BucketSink::of(&settings)?;
        let instance = settings.serve.instance_name();
        let log = PredictionLog::start(sink, metrics.clone(), &instance).map_err(|source| {
            PublishError::Io {
                path: "prediction-log thread".into(),
                source,
            }
        })?;
        let waiting = Snapshot::empty(format!(
            "no serving publication loaded yet from {url} (the writer puts one out at start-up and after every run)"
        ));
        // A replica has no database: its audit events go to its log.
        let audit =
            crate::access::AuditLog::start(None, &instance).map_err(|source| PublishError::Io {
                path: "audit-log thread".into(),
                source,
            })?;
        let mut runtime = Runtime::new(waiting, settings, metrics)
            .with_prediction_log(log)
            .with_audit(audit);
        runtime.role = Role::Replica;
        runtime.following = Some(Following {
            url,
            state: Mutex::new(FollowingState::default()),
        });
        let runtime = Arc::new(runtime);
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (runtime, stop) = (runtime.clone(), stop.clone());
            std::thread::Builder::new()
                .name("replica-follow".into())
                .spawn(move || follow(&runtime, &follower, &stop))
                .map_err(|source| PublishError::Io {
                    path: "replica-follow thread".into(),
                    source,
                })?
        };
        Ok((
            runtime.clone(),
            ReplicaHandle {
                stop,
                thread: Some(thread),
                runtime,
            },
        ))
    }
}

fn follow(runtime: &Runtime, follower: &Follower, stop: &AtomicBool) {
    let every = Duration::from_secs(runtime.settings.publish.poll_secs);
    let mut loaded: Option<Loaded> = None;
    while !stop.load(Ordering::SeqCst) {
        poll(runtime, follower, &mut loaded);
        let until = Instant::now() + every;
        while Instant::now() < until && !stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Opens SQL on the lake, on a replica whose lake is shared, until it opens (the catalog may be
/// down when the replica starts).
fn open_lake_sql(runtime: &Runtime) {
    if !runtime.sql_reads_lake() || runtime.queries.reads_lake() {
        return;
    }
    let writer = runtime.settings.serve.writer_url.trim();
    let elsewhere = if writer.is_empty() {
        "the writer's (serve.writer_url is not set on this replica)".to_string()
    } else {
        format!("the writer's, at {writer}")
    };
    let before = runtime.queries.lake_problem();
    match runtime.queries.open_lake(&runtime.settings, &elsewhere) {
        Ok(()) => tracing::info!("SQL on this replica reads the lake"),
        Err(e) => {
            if before.as_deref() != Some(e.to_string().as_str()) {
                tracing::warn!("SQL on this replica cannot read the lake yet: {e}");
            }
        }
    }
}

/// Reads the manifest; loads a newer publication and swaps it in.
fn poll(runtime: &Runtime, follower: &Follower, loaded: &mut Option<Loaded>) {
    open_lake_sql(runtime);
    let Some(following) = runtime.following() else {
        return;
    };
    let m = &runtime.metrics;
    let manifest = match follower.newest() {
        Ok(Some(manifest)) => manifest,
        Ok(None) => {
            following.update(|s| {
                s.last_read_at = Some(Utc::now());
                s.problem = Some(format!("nothing is published at {} yet", following.url));
            });
            return;
        }
        Err(e) => {
            let stage = match e {
                PublishError::NewerFormat { .. } => "format_version",
                _ => "manifest",
            };
            fail(runtime, stage, &e);
            return;
        }
    };
    let serving = loaded.as_ref().map(|l| l.fetched.manifest.version);
    m.coincast_serving_publication_newest_version
        .set(manifest.version as f64);
    m.coincast_serving_publication_last_success_timestamp_seconds
        .set(Utc::now().timestamp() as f64);
    following.update(|s| {
        s.newest_version = Some(manifest.version);
        s.last_read_at = Some(Utc::now());
    });
    if serving.is_some_and(|v| v >= manifest.version) {
        following.update(|s| s.problem = None);
        set_lag(m, serving, manifest.version);
        return;
    }
    let started = Instant::now();
    match load(runtime, follower, &manifest, loaded.as_ref()) {
        Ok(new) => {
            follower.remove_others(&new.fetched);
            *loaded = Some(new);
            m.coincast_serving_publication_seconds
                .observe(started.elapsed().as_secs_f64());
            m.coincast_serving_publication_version
                .set(manifest.version as f64);
            m.coincast_serving_publication_bytes
                .set(manifest.bytes() as f64);
            m.coincast_serving_publication_timestamp_seconds
                .set(manifest.published_at.timestamp() as f64);
            set_lag(m, Some(manifest.version), manifest.version);
            following.update(|s| {
                s.serving_version = Some(manifest.version);
                s.problem = None;
            });
            tracing::info!(
                version = manifest.version,
                bytes = manifest.bytes(),
                seconds = started.elapsed().as_secs_f64(),
                "serving publication loaded from {}",
                following.url
            );
        }
        Err(e) => {
            set_lag(m, serving, manifest.version);
            fail(runtime, "load", &e);
        }
    }
}

fn set_lag(m: &Metrics, serving: Option<u64>, newest: u64) {
    let lag = newest.saturating_sub(serving.unwrap_or(0));
    m.coincast_serving_publication_lag_versions.set(lag as f64);
}

fn fail(runtime: &Runtime, stage: &str, e: &PublishError) {
    runtime
        .metrics
        .coincast_serving_publication_failures_total
        .with_label_values(&[stage])
        .inc();
    let message = report(e);
    if let Some(following) = runtime.following() {
        let first = following.state().problem.as_deref() != Some(message.as_str());
        if first {
            tracing::warn!("serving publication ({stage}): {message}; serving what was loaded");
        }
        following.update(|s| s.problem = Some(message));
    }
}

/// Fetches `manifest`'s files beside the served ones, loads its snapshot and the pages'
/// connections, and swaps both in.
fn load(
    runtime: &Runtime,
    follower: &Follower,
    manifest: &crate::publish::Manifest,
    current: Option<&Loaded>,
) -> Result<Loaded, PublishError> {
    let fetched = follower.fetch(manifest, current.map(|l| &l.fetched))?;
    let conn = Connection::open_with_flags(
        fetched.database(),
        duckdb::Config::default().access_mode(duckdb::AccessMode::ReadOnly)?,
    )?;
    let mut settings = runtime.settings.clone();
    settings.data_dir = fetched.dir.clone();
    let ticket = runtime.publisher.begin();
    let mut snapshot = Snapshot::load(&conn, &settings);
    snapshot.publication = Some(PublicationInfo {
        version: manifest.version,
        published_at: manifest.published_at,
        writer: manifest.writer.clone(),
        series_from_hour: manifest.series_from_hour,
    });
    let serve = &runtime.settings.serve;
    let pages = ReadPool::new(
        &conn,
        serve.page_connections,
        Duration::from_secs(serve.page_timeout_secs),
    )?;
    runtime.pages.store(Some(Arc::new(pages)));
    runtime.publisher.publish(ticket, snapshot);
    Ok(Loaded {
        fetched,
        _conn: conn,
    })
}
