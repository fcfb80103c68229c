//! What kind of failure an error is, decided by its type, and how to say it in one line.
//!
//! Every module error that can end a command or a run implements `Classify`; the command line's
//! exit codes, the API's statuses and the words the pages show for a failed run all come from
//! the `Failure` it returns, never from parsing messages.

use std::error::Error;

/// The kinds of failure a user acts on differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Bad command line, configuration, rule file or model definition: change it and retry.
    Usage,
    /// The data was refused: a batch quarantined or unreadable, a file with a bad name.
    DataRejected,
    /// The database is held by another process, or was written by a newer coincast.
    DatabaseBusy,
    /// The source (CoinGecko) could not be reached for any coin.
    SourceUnavailable,
    /// Stopped by a shutdown before it finished.
    Interrupted,
    /// A bug, the disk, or anything else unexpected.
    Internal,
}

impl Failure {
    /// The stable name stored with a failed run (`pipeline_runs.failure`).
    pub fn name(self) -> &'static str {
        match self {
            Failure::Usage => "usage",
            Failure::DataRejected => "data_rejected",
            Failure::DatabaseBusy => "database_busy",
            Failure::SourceUnavailable => "source_unavailable",
            Failure::Interrupted => "interrupted",
            Failure::Internal => "internal",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        [
            Failure::Usage,
            Failure::DataRejected,
            Failure::DatabaseBusy,
            Failure::SourceUnavailable,
            Failure::Interrupted,
            Failure::Internal,
        ]
        .into_iter()
        .find(|f| f.name() == name)
    }

    /// What it means for the operator, in words (the overview page).
    pub fn words(self) -> &'static str {
        match self {
            Failure::Usage => "a setting, rule file or model definition is invalid: fix it and run again",
            Failure::DataRejected => "the data was refused by the quality gate or could not be read; see the quality page",
            Failure::DatabaseBusy => "the database is held by another process or was written by a newer coincast",
            Failure::SourceUnavailable => "CoinGecko could not be reached; the next run fetches what was missed",
            Failure::Interrupted => "stopped by a shutdown; the next run finishes what it left",
            Failure::Internal => "an unexpected failure (a bug or the disk); see the run's error and the log",
        }
    }
}

/// An error that knows what kind of failure it is.
pub trait Classify {
    fn failure(&self) -> Failure;
}

/// The error and its causes in one line, `outer: cause: cause`, each said once: a cause whose
/// text the line already holds is left out (many errors print their source in their own
/// message), and so is DuckDB's placeholder for failures without a code.
pub fn report(err: &(dyn Error + 'static)) -> String {
    let mut line = err.to_string();
    let mut cause = err.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !text.is_empty() && !line.contains(&text) && !is_placeholder(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        cause = c.source();
    }
    line
}

/// DuckDB's `Error code 1: Unknown error code`, which says nothing.
fn is_placeholder(text: &str) -> bool {
    text.starts_with("Error code ") && text.ends_with(": Unknown error code")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer: {0}")]
    struct Repeats(#[source] std::io::Error);

    #[test]
    fn a_cause_the_message_already_holds_is_said_once() {
        let e = Repeats(std::io::Error::other("disk full"));
        assert_eq!(report(&e), "outer: disk full");
    }

    #[test]
    fn duckdb_failures_do_not_end_in_its_placeholder() {
        let conn = duckdb::Connection::open_in_memory().expect("open");
        let e = conn
            .execute_batch("SELECT * FROM no_such_table")
            .unwrap_err();
        let line = report(&e);
        assert!(line.contains("no_such_table"), "{line}");
        assert!(!line.contains("Unknown error code"), "{line}");
    }

    #[test]
    fn names_round_trip() {
        for f in [
            Failure::Usage,
            Failure::SourceUnavailable,
            Failure::Internal,
        ] {
            assert_eq!(Failure::from_name(f.name()), Some(f));
        }
    }
}
