//! The audit trail: every admin action and every SQL statement, with the token's name, the time,
//! the route or statement (truncated), the outcome and the duration. Handed to a bounded queue
//! (never waiting on it) and written by one thread with its own DuckDB connection to
//! `audit_log` (`sql/access/record_audit.sql`); a server without a database of its own (a
//! replica) writes each event to its log instead (target `coincast::audit`). Events hold no
//! token and no secret: the name is all that identifies who acted.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::Duration;

use chrono::{DateTime, Utc};
use duckdb::Connection;

/// Events waiting to be written before new ones are dropped (and counted).
const QUEUE: usize = 4_096;
/// How long the writer lets events gather before a transaction.
const LINGER: Duration = Duration::from_millis(200);
/// The longest statement kept, in characters.
pub const STATEMENT_CHARS: usize = 1_000;

/// How a request came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Http,
    Postgres,
}

impl Channel {
    fn name(self) -> &'static str {
        match self {
            Channel::Http => "http",
            Channel::Postgres => "postgres",
        }
    }
}

/// One thing someone did.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    pub at: DateTime<Utc>,
    /// The token's name (`anonymous` where no token is needed).
    pub token: String,
    pub channel: Channel,
    /// `POST /api/models/{model_id}/promote`, `sql`, ...
    pub action: String,
    /// The SQL statement or the route's path, truncated.
    pub statement: Option<String>,
    /// The HTTP status, or `ok` / the error's code.
    pub outcome: String,
    pub duration_ms: f64,
    /// The client's address, when known.
    pub client: Option<String>,
}

impl AuditEvent {
    /// `statement`, cut to `STATEMENT_CHARS` characters.
    pub fn truncated(statement: &str) -> String {
        match statement.char_indices().nth(STATEMENT_CHARS) {
            Some((cut, _)) => format!("{}…", &statement[..cut]),
            None => statement.to_string(),
        }
    }
}

enum Message {
    Event(Box<AuditEvent>),
    Flush(mpsc::Sender<()>),
    Stop,
}

/// The queue and its writer.
pub struct AuditLog {
    sender: SyncSender<Message>,
    instance: String,
    dropped: AtomicU64,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl AuditLog {
    /// Starts the writer: into `audit_log` on `conn`, or into the log when there is none.
    pub fn start(conn: Option<Connection>, instance: &str) -> std::io::Result<Self> {
        let (sender, receiver) = mpsc::sync_channel(QUEUE);
        let name = instance.to_string();
        let thread = std::thread::Builder::new()
            .name("audit-log".into())
            .spawn(move || write_loop(conn, &name, &receiver))?;
        Ok(Self {
            sender,
            instance: instance.to_string(),
            dropped: AtomicU64::new(0),
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Queues `event`; a full queue drops it and counts it.
    pub fn record(&self, event: AuditEvent) {
        match self.sender.try_send(Message::Event(Box::new(event))) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Events dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// This server's name in the trail.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Waits until everything queued so far is written.
    pub fn flush(&self) {
        let (tx, rx) = mpsc::channel();
        if self.sender.send(Message::Flush(tx)).is_ok() {
            let _ = rx.recv_timeout(Duration::from_secs(10));
        }
    }

    /// Writes what is queued, then ends the writer.
    pub fn stop(&self) {
        let _ = self.sender.send(Message::Stop);
        if let Some(t) = self.thread.lock().ok().and_then(|mut t| t.take()) {
            let _ = t.join();
        }
    }
}

/// What the writer holds between transactions.
#[derive(Default)]
struct Gathered {
    events: Vec<AuditEvent>,
    waiting: Vec<mpsc::Sender<()>>,
    stop: bool,
}

impl Gathered {
    fn take(&mut self, message: Message) {
        match message {
            Message::Event(e) => self.events.push(*e),
            Message::Flush(tx) => self.waiting.push(tx),
            Message::Stop => self.stop = true,
        }
    }
}

fn write_loop(conn: Option<Connection>, instance: &str, receiver: &Receiver<Message>) {
    loop {
        let Ok(first) = receiver.recv() else {
            return;
        };
        let mut gathered = Gathered::default();
        gathered.take(first);
        let until = std::time::Instant::now() + LINGER;
        while !gathered.stop && gathered.waiting.is_empty() {
            let left = until.saturating_duration_since(std::time::Instant::now());
            match receiver.recv_timeout(left) {
                Ok(m) => gathered.take(m),
                Err(_) => break,
            }
        }
        write(conn.as_ref(), instance, &gathered.events);
        for tx in gathered.waiting {
            let _ = tx.send(());
        }
        if gathered.stop {
            return;
        }
    }
}

fn write(conn: Option<&Connection>, instance: &str, batch: &[AuditEvent]) {
    if batch.is_empty() {
        return;
    }
    let Some(conn) = conn else {
        for e in batch {
            tracing::info!(
                target: "coincast::audit",
                at = %e.at.to_rfc3339(),
                token = %e.token,
                channel = e.channel.name(),
                action = %e.action,
                statement = e.statement.as_deref().unwrap_or(""),
                outcome = %e.outcome,
                duration_ms = e.duration_ms,
                client = e.client.as_deref().unwrap_or(""),
                "audit"
            );
        }
        return;
    };
    if let Err(e) = insert(conn, instance, batch) {
        tracing::warn!(
            "{} audit event(s) could not be written: {}",
            batch.len(),
            crate::failure::report(&e)
        );
    }
}

fn insert(conn: &Connection, instance: &str, batch: &[AuditEvent]) -> Result<(), duckdb::Error> {
    conn.execute_batch("BEGIN")?;
    let result = (|| {
        let mut stmt = conn.prepare_cached(include_str!("../../sql/access/record_audit.sql"))?;
        for e in batch {
            stmt.execute(duckdb::params![
                e.at,
                instance,
                e.token,
                e.channel.name(),
                e.action,
                e.statement,
                e.outcome,
                e.duration_ms,
                e.client,
            ])?;
        }
        Ok(())
    })();
    match result {
        Ok(()) => conn.execute_batch("COMMIT"),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_statements_are_cut_on_a_character() {
        let long = "é".repeat(STATEMENT_CHARS + 5);
        let cut = AuditEvent::truncated(&long);
        assert_eq!(cut.chars().count(), STATEMENT_CHARS + 1);
        assert!(cut.ends_with('…'));
        assert_eq!(AuditEvent::truncated("SELECT 1"), "SELECT 1");
    }
}
