//! The prediction log: `/predict` hands each served forecast to a bounded queue (never waiting
//! on it), and one writer thread with its own DuckDB connection appends them to `predictions`
//! in batches through DuckDB's appender. A full queue drops the record and counts it, so a
//! slow disk can never slow the API down.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use duckdb::{params, Connection};

use super::metrics::Metrics;

/// Records waiting to be written before new ones are dropped.
const QUEUE: usize = 16_384;
/// Most records per transaction.
const BATCH: usize = 2_048;
/// How long the writer collects a batch after its first record.
const LINGER: Duration = Duration::from_millis(200);

/// One served forecast, as logged.
#[derive(Debug, Clone)]
pub struct PredictionRecord {
    /// Microseconds since the epoch.
    pub requested_at_micros: i64,
    pub request_id: Option<String>,
    pub coin_id: String,
    pub vs_currency: String,
    pub model_id: String,
    pub model_type: String,
    pub horizon: i64,
    /// Hours since the epoch.
    pub as_of_hour: i64,
    pub current_price: f64,
    pub predicted_price: f64,
    pub lower: f64,
    pub upper: f64,
    pub level: f64,
    pub latency_ms: f64,
    pub drift_ratio: f64,
}

enum Message {
    Record(Box<PredictionRecord>),
    /// Write everything queued so far, then answer.
    Flush(mpsc::Sender<()>),
    /// Write everything queued so far, then end.
    Stop,
}

pub struct PredictionLog {
    sender: SyncSender<Message>,
    metrics: Arc<Metrics>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl PredictionLog {
    /// Starts the writer on `conn` (a connection of its own, e.g. `store.conn().try_clone()`).
    pub fn start(conn: Connection, metrics: Arc<Metrics>) -> std::io::Result<Self> {
        let (sender, receiver) = mpsc::sync_channel(QUEUE);
        let writer_metrics = metrics.clone();
        let writer = std::thread::Builder::new()
            .name("prediction-log".into())
            .spawn(move || write_loop(&conn, &receiver, &writer_metrics))?;
        Ok(Self {
            sender,
            metrics,
            writer: Mutex::new(Some(writer)),
        })
    }

    /// Queues a record without waiting; a full queue drops it (counted).
    pub fn record(&self, record: PredictionRecord) {
        match self.sender.try_send(Message::Record(Box::new(record))) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => self
                .metrics
                .coincast_predictions_dropped_total
                .with_label_values(&["queue_full"])
                .inc(),
        }
    }

    /// Waits until every record queued before this call is written.
    pub fn flush(&self) {
        let (done_tx, done_rx) = mpsc::channel();
        if self.sender.send(Message::Flush(done_tx)).is_ok() {
            let _ = done_rx.recv();
        }
    }

    /// Writes what is queued and stops the writer (at shutdown, before the checkpoint).
    pub fn stop(&self) {
        let _ = self.sender.send(Message::Stop);
        let handle = self.writer.lock().ok().and_then(|mut w| w.take());
        if let Some(h) = handle {
            let _ = h.join();
        }
    }
}

fn write_loop(conn: &Connection, receiver: &Receiver<Message>, metrics: &Metrics) {
    let mut batch: Vec<PredictionRecord> = Vec::with_capacity(BATCH);
    loop {
        // Block for the first record, then linger to gather a batch.
        let Ok(first) = receiver.recv() else {
            return;
        };
        let mut pending = Some(first);
        let deadline = Instant::now() + LINGER;
        let mut after_write: Option<Message> = None;
        while let Some(message) = pending.take() {
            match message {
                Message::Record(r) => batch.push(*r),
                other => {
                    after_write = Some(other);
                    break;
                }
            }
            if batch.len() >= BATCH {
                break;
            }
            let wait = deadline.saturating_duration_since(Instant::now());
            pending = match receiver.recv_timeout(wait) {
                Ok(m) => Some(m),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => {
                    after_write = Some(Message::Stop);
                    None
                }
            };
        }
        write_batch(conn, &mut batch, metrics);
        match after_write {
            Some(Message::Flush(done)) => {
                // Everything queued before the flush is ahead of it in the channel.
                let _ = done.send(());
            }
            Some(Message::Stop) => {
                drain(conn, receiver, &mut batch, metrics);
                return;
            }
            _ => {}
        }
    }
}

/// Writes whatever is still queued (at stop).
fn drain(
    conn: &Connection,
    receiver: &Receiver<Message>,
    batch: &mut Vec<PredictionRecord>,
    metrics: &Metrics,
) {
    while let Ok(message) = receiver.try_recv() {
        match message {
            Message::Record(r) => batch.push(*r),
            Message::Flush(done) => {
                write_batch(conn, batch, metrics);
                let _ = done.send(());
            }
            Message::Stop => {}
        }
    }
    write_batch(conn, batch, metrics);
}

/// The columns the writer fills; the others start NULL (the score) or by default (the id).
const COLUMNS: [&str; 16] = [
    "requested_at",
    "request_id",
    "coin_id",
    "vs_currency",
    "model_id",
    "model_type",
    "horizon",
    "as_of",
    "target_ts",
    "current_price",
    "predicted_price",
    "lower",
    "upper",
    "level",
    "latency_ms",
    "drift_ratio",
];

/// Appends a batch with DuckDB's appender (one flush, about 100x the rate of row INSERTs).
fn write_batch(conn: &Connection, batch: &mut Vec<PredictionRecord>, metrics: &Metrics) {
    if batch.is_empty() {
        return;
    }
    let hour = |h: i64| DateTime::<Utc>::from_timestamp(h * 3600, 0).unwrap_or_default();
    let written = (|| -> Result<(), duckdb::Error> {
        let mut appender = conn.appender_with_columns("predictions", &COLUMNS)?;
        for p in batch.iter() {
            appender.append_row(params![
                DateTime::<Utc>::from_timestamp_micros(p.requested_at_micros).unwrap_or_default(),
                p.request_id,
                p.coin_id,
                p.vs_currency,
                p.model_id,
                p.model_type,
                p.horizon,
                hour(p.as_of_hour),
                hour(p.as_of_hour + p.horizon),
                p.current_price,
                p.predicted_price,
                p.lower,
                p.upper,
                p.level,
                p.latency_ms,
                p.drift_ratio
            ])?;
        }
        appender.flush()
    })();
    match written {
        Ok(()) => metrics
            .coincast_predictions_logged_total
            .inc_by(batch.len() as u64),
        Err(e) => {
            tracing::warn!("logging {} prediction(s) failed: {e}", batch.len());
            metrics
                .coincast_predictions_dropped_total
                .with_label_values(&["write_failed"])
                .inc_by(batch.len() as u64);
        }
    }
    batch.clear();
}
