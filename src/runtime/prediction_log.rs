//! The prediction log: `/predict` hands each served forecast to a bounded queue (never waiting
//! on it), and one writer thread with its own DuckDB connection appends them to `predictions`
//! in batches through DuckDB's appender, each batch one segment of the `predictions` contract
//! (`monitor::predictions`: identical forecasts one row with their count, rows named by the
//! instance, a segment taken once). A replica's segments go to the serving publication's URL
//! instead (`SegmentSink`), for the writer to take in. A full queue drops the record and counts
//! it, so a slow disk can never slow the API down.

use std::collections::HashMap;
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use chrono::{DateTime, Utc};
use duckdb::Connection;

use super::metrics::Metrics;
use crate::monitor::predictions::{take_segment, Segment, ServedForecast};

/// Records waiting to be written before new ones are dropped.
const QUEUE: usize = 16_384;
/// Most records per transaction.
const BATCH: usize = 2_048;
/// How long the writer lets a batch gather after its first record.
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

/// Where the writer thread puts each segment: the database's `predictions` (the writer), or the
/// publication's URL (a replica).
pub trait SegmentSink: Send + 'static {
    fn write(&mut self, segment: &Segment) -> Result<(), String>;
}

impl SegmentSink for Connection {
    fn write(&mut self, segment: &Segment) -> Result<(), String> {
        take_segment(self, segment)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

impl SegmentSink for crate::publish::BucketSink {
    fn write(&mut self, segment: &Segment) -> Result<(), String> {
        crate::publish::BucketSink::write(self, segment).map_err(|e| crate::failure::report(&e))
    }
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
    /// Starts the writer on `sink` (a connection of its own, e.g. `store.conn().try_clone()`,
    /// or a replica's bucket). Its rows are named by `instance` (`serve.instance`).
    pub fn start(
        mut sink: impl SegmentSink,
        metrics: Arc<Metrics>,
        instance: &str,
    ) -> std::io::Result<Self> {
        let (sender, receiver) = mpsc::sync_channel(QUEUE);
        let writer_metrics = metrics.clone();
        let mut segments = Segments {
            instance: instance.to_string(),
            started_micros: Utc::now().timestamp_micros(),
            written: 0,
        };
        let writer = std::thread::Builder::new()
            .name("prediction-log".into())
            .spawn(move || write_loop(&mut sink, &receiver, &mut segments, &writer_metrics))?;
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

fn write_loop(
    sink: &mut impl SegmentSink,
    receiver: &Receiver<Message>,
    segments: &mut Segments,
    metrics: &Metrics,
) {
    let mut batch: Vec<PredictionRecord> = Vec::with_capacity(BATCH);
    // Whether the last batch took everything queued (else the next one starts at once).
    let mut caught_up = true;
    loop {
        // Block for the first record, then let a batch gather while asleep: a writer waiting in
        // the channel is woken (a futex call on /predict's path) by every record sent to it.
        let Ok(first) = receiver.recv() else {
            return;
        };
        if caught_up && matches!(first, Message::Record(_)) {
            std::thread::sleep(LINGER);
        }
        let mut pending = Some(first);
        let mut after_write: Option<Message> = None;
        caught_up = true;
        while let Some(message) = pending.take() {
            match message {
                Message::Record(r) => batch.push(*r),
                other => {
                    after_write = Some(other);
                    break;
                }
            }
            if batch.len() >= BATCH {
                caught_up = false;
                break;
            }
            pending = match receiver.try_recv() {
                Ok(m) => Some(m),
                Err(TryRecvError::Empty) => None,
                Err(TryRecvError::Disconnected) => {
                    after_write = Some(Message::Stop);
                    None
                }
            };
        }
        write_batch(sink, &mut batch, segments, metrics);
        match after_write {
            Some(Message::Flush(done)) => {
                // Everything queued before the flush is ahead of it in the channel.
                let _ = done.send(());
            }
            Some(Message::Stop) => {
                drain(sink, receiver, &mut batch, segments, metrics);
                return;
            }
            _ => {}
        }
    }
}

/// Writes whatever is still queued (at stop).
fn drain(
    sink: &mut impl SegmentSink,
    receiver: &Receiver<Message>,
    batch: &mut Vec<PredictionRecord>,
    segments: &mut Segments,
    metrics: &Metrics,
) {
    while let Ok(message) = receiver.try_recv() {
        match message {
            Message::Record(r) => batch.push(*r),
            Message::Flush(done) => {
                write_batch(sink, batch, segments, metrics);
                let _ = done.send(());
            }
            Message::Stop => {}
        }
    }
    write_batch(sink, batch, segments, metrics);
}

/// Identical forecasts in one batch: the same model, coin, origin, horizon and interval.
#[derive(Hash, PartialEq, Eq)]
struct SameForecast<'a> {
    model_id: &'a str,
    coin_id: &'a str,
    vs_currency: &'a str,
    horizon: i64,
    as_of_hour: i64,
    values: [u64; 4],
}

/// The batch as rows of `predictions`: identical forecasts are one row with their count, the
/// first request's id and time, the last request's time and the mean latency.
fn aggregate(batch: &[PredictionRecord]) -> Vec<ServedForecast> {
    let micros = |t: i64| DateTime::<Utc>::from_timestamp_micros(t).unwrap_or_default();
    let hour = |h: i64| DateTime::<Utc>::from_timestamp(h * 3600, 0).unwrap_or_default();
    let mut rows: Vec<ServedForecast> = Vec::new();
    let mut index: HashMap<SameForecast, usize> = HashMap::new();
    for p in batch {
        let key = SameForecast {
            model_id: &p.model_id,
            coin_id: &p.coin_id,
            vs_currency: &p.vs_currency,
            horizon: p.horizon,
            as_of_hour: p.as_of_hour,
            values: [p.predicted_price, p.lower, p.upper, p.level].map(f64::to_bits),
        };
        match index.get(&key) {
            Some(&i) => {
                let row = &mut rows[i];
                let n = row.served_count as f64;
                row.latency_ms = (row.latency_ms * n + p.latency_ms) / (n + 1.0);
                row.served_count += 1;
                let at = micros(p.requested_at_micros);
                row.last_requested_at = row.last_requested_at.max(at);
                if at < row.requested_at {
                    row.requested_at = at;
                    row.request_id = p.request_id.clone();
                }
            }
            None => {
                index.insert(key, rows.len());
                rows.push(ServedForecast {
                    requested_at: micros(p.requested_at_micros),
                    last_requested_at: micros(p.requested_at_micros),
                    served_count: 1,
                    request_id: p.request_id.clone(),
                    coin_id: p.coin_id.clone(),
                    vs_currency: p.vs_currency.clone(),
                    model_id: p.model_id.clone(),
                    model_type: p.model_type.clone(),
                    horizon: p.horizon,
                    as_of: hour(p.as_of_hour),
                    current_price: p.current_price,
                    predicted_price: p.predicted_price,
                    lower: p.lower,
                    upper: p.upper,
                    level: p.level,
                    latency_ms: p.latency_ms,
                    drift_ratio: p.drift_ratio,
                });
            }
        }
    }
    rows
}

/// Where the writer is: its instance, and the segments it has written (their ids are unique
/// across instances and restarts: instance, start time, number).
struct Segments {
    instance: String,
    started_micros: i64,
    written: u64,
}

/// Writes a batch as one segment (on the writer, `monitor::predictions::take_segment`: one
/// transaction, the appender inside it).
fn write_batch(
    sink: &mut impl SegmentSink,
    batch: &mut Vec<PredictionRecord>,
    segments: &mut Segments,
    metrics: &Metrics,
) {
    if batch.is_empty() {
        return;
    }
    let rows = aggregate(batch);
    segments.written += 1;
    let segment_id = format!(
        "{}/{}-{}",
        segments.instance, segments.started_micros, segments.written
    );
    let taken = sink.write(&Segment {
        segment_id: &segment_id,
        instance: &segments.instance,
        rows: &rows,
    });
    match taken {
        Ok(_) => metrics
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

#[cfg(test)]
mod tests {
    use super::*;

    fn record(at: i64, horizon: i64, latency_ms: f64) -> PredictionRecord {
        PredictionRecord {
            requested_at_micros: at,
            request_id: Some(format!("r{at}")),
            coin_id: "bitcoin".into(),
            vs_currency: "usd".into(),
            model_id: "m".into(),
            model_type: "lstm".into(),
            horizon,
            as_of_hour: 490_000,
            current_price: 1.0,
            predicted_price: 2.0,
            lower: 0.5,
            upper: 3.0,
            level: 0.9,
            latency_ms,
            drift_ratio: 0.0,
        }
    }

    #[test]
    fn identical_forecasts_in_a_batch_become_one_row_with_their_count() {
        let mut batch: Vec<_> = (0..100).map(|i| record(1_000 + i, 24, 1.0)).collect();
        batch.push(record(5_000, 1, 3.0));
        let mut other_interval = record(6_000, 24, 1.0);
        other_interval.upper = 3.5;
        batch.push(other_interval);
        batch.push(record(500, 24, 3.0));
        let rows = aggregate(&batch);
        assert_eq!(rows.len(), 3);
        let day = &rows[0];
        assert_eq!(day.served_count, 101);
        assert_eq!(
            day.request_id.as_deref(),
            Some("r500"),
            "the first request's id"
        );
        assert_eq!(day.requested_at.timestamp_micros(), 500);
        assert_eq!(day.last_requested_at.timestamp_micros(), 1_099);
        assert!((day.latency_ms - 103.0 / 101.0).abs() < 1e-12);
        assert_eq!(rows.iter().map(|r| r.served_count).sum::<u64>(), 103);
    }
}
